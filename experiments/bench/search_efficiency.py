"""Search efficiency: how many evaluations each search policy needs to find a top-1% layout, against random.

The space is small enough to score exhaustively: depth 8 over {A, M} = 256 layouts by default. Every layout is
trained and scored once (seed 0) by `LayoutEvaluator` in switch mode on a cheap mad-lite proxy (one MAD task,
`--task` in_context_recall, `--steps` 30, width 32: measured on 2 CPU cores, the task whose spread over layouts
was largest against its seed noise); the scores go to a JSON cache (`--cache`; reused when present, a partial
one is completed). The target set is the top-1% *of the cached scores*: every layout scoring >= the k-th best,
k = ceil(0.01 * 256) = 3. A single seed per layout means part of that ranking is noise: the script re-scores
`--noise-layouts` random layouts and the top k with seed 1 and prints the seed noise next to the spread.

Each search run replays the cached scores: an `EvaluationQueue` whose evaluator is a dict lookup, one agent
(`HeuristicOperator` + `make_policy(name)`, default options) under `run_ensemble`, seeds 0..`--seeds`-1. The
count is the number of *distinct* layouts evaluated up to and including the first target (the queue answers
duplicates from its cache, free). The agent runs in chunks of 16 steps (`run_ensemble` resumed on the same
journal and queue) and stops at the first chunk with a hit, or after `--max-steps` journal nodes (duplicates
included): "not reached" (a greedy agent whose best layout has no unevaluated neighbour left stalls
there). Random search draws uniformly without replacement from
the whole space (same seeds); its exact distribution is also printed (first of k targets among N in a random
order: mean (N + 1) / (k + 1)) and the ratios use the exact values. Note the heuristic drafts from a prior
(attention fraction ~ Beta(8, 12)), so "one_shot" (drafts only) measures the prior alone.

  python experiments/bench/search_efficiency.py [--cache PATH] [--seeds 20] [--policies greedy,mcts,...]
      [--task in_context_recall] [--steps 30] [--depth 8] [--max-steps 1000] [--noise-layouts 32] [--quick]
--quick: depth 6 (64 layouts), 5 seeds, 8 noise layouts. Scoring 256 layouts takes ~3 min on 2 CPU cores;
the search runs take seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from aira_jax.agents import AgentSpec, Budgets, EvalResult, EvaluationQueue, Journal  # noqa: E402
from aira_jax.agents import make_policy, run_ensemble  # noqa: E402
from aira_jax.compose.config import EvaluatorConfig  # noqa: E402
from aira_jax.compose.evaluator import LayoutEvaluator  # noqa: E402
from aira_jax.compose.heuristic import HeuristicOperator, draft  # noqa: E402
from aira_jax.compose.layout_mutations import space_symbols  # noqa: E402
from aira_jax.layout import Layout  # noqa: E402


def score_space(args) -> dict:
  """The cache: every layout's seed-0 score and the seed-1 re-scores; evaluates what the cache lacks."""
  config = EvaluatorConfig(task="mad-lite", mad_tasks=(args.task,), steps=args.steps, mode="switch")
  settings = json.loads(json.dumps(dict(space=args.space, depth=args.depth, **dataclasses.asdict(config))))
  cache = {"settings": settings, "scores": {}, "noise_scores": {}, "seconds": 0.0}
  if os.path.exists(args.cache):
    with open(args.cache) as f:
      cache = json.load(f)
    if cache["settings"] != settings:
      sys.exit(f"{args.cache} holds scores for other settings {cache['settings']}; pass another --cache")
  layouts = ["".join(p) for p in itertools.product(space_symbols(args.space), repeat=args.depth)]
  rng = random.Random(1)
  noise = rng.sample(layouts, min(args.noise_layouts, len(layouts)))
  evaluator = None

  def fill(table: dict, wanted: list[str], seed: int) -> None:
    nonlocal evaluator
    missing = [t for t in wanted if t not in table]
    for i, text in enumerate(missing, start=1):
      if evaluator is None:
        evaluator = LayoutEvaluator(config, space=args.space, depth=args.depth)
      evaluation = evaluator.evaluate(text, seed=seed)
      table[text] = evaluation.metric
      cache["seconds"] += evaluation.seconds
      if i % 32 == 0 or i == len(missing):
        print(f"  scored {i}/{len(missing)} (seed {seed}), {cache['seconds']:.0f} s evaluating", flush=True)
        with open(args.cache, "w") as f:
          json.dump(cache, f)

  fill(cache["scores"], layouts, 0)
  ranked = sorted((t for t in layouts if cache["scores"][t] is not None), key=lambda t: -cache["scores"][t])
  fill(cache["noise_scores"], noise + ranked[:top_k(len(layouts), args.top)], 1)
  cache["noise_layouts"] = noise
  return cache


def search_run(policy: str, scores: dict, targets: set, args, seed: int) -> tuple[float, float]:
  """(distinct evaluations, journal nodes) up to and including the first target; inf when none was reached."""
  order: list[str] = []

  def evaluate(payload: str) -> EvalResult:
    text = Layout.parse(payload, space=args.space).text
    order.append(text)
    metric = scores[text]
    return EvalResult(metric=metric, is_buggy=metric is None, error=None if metric is not None else "diverged")

  queue = EvaluationQueue(evaluate, key=lambda p: Layout.parse(p, space=args.space).text)
  journal = Journal()
  agent = AgentSpec("agent", make_policy(policy), HeuristicOperator(args.space, args.depth), seed=seed)
  steps, hit = 0, math.inf
  while steps < args.max_steps and len(order) < len(scores) and hit == math.inf:
    steps = min(steps + 16, args.max_steps)
    report = run_ensemble([agent], journal, queue, Budgets(steps_per_agent=steps))
    if report.crashes:
      raise RuntimeError(f"{policy} seed {seed} crashed:\n{report.crashes[0][1]}")
    hit = next((i + 1 for i, t in enumerate(order) if t in targets), math.inf)
  queue.shutdown()
  nodes = next((i + 1 for i, node in enumerate(journal.nodes) if node.payload
                and Layout.parse(node.payload, space=args.space).text in targets), math.inf)
  return hit, nodes


def top_k(n: int, fraction: float) -> int:
  """How many layouts the top `fraction` of n holds (at least one)."""
  return max(1, math.ceil(fraction * n))


def exact_random(n: int, k: int) -> tuple[float, int]:
  """(mean, median) of the position of the first of k targets in a uniform random order of n."""
  survive = [math.comb(n - t, k) / math.comb(n, k) for t in range(n + 1)]  # P(T > t)
  return (n + 1) / (k + 1), next(t for t in range(1, n + 1) if survive[t] <= 0.5)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cache", default=None, help="score cache (default /tmp/aira_search_efficiency_*.json)")
  parser.add_argument("--seeds", type=int, default=20)
  parser.add_argument("--policies", default="greedy,mcts,evolutionary,one_shot")
  parser.add_argument("--task", default="in_context_recall", help="the mad-lite task that scores layouts")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--depth", type=int, default=8)
  parser.add_argument("--space", default="AM")
  parser.add_argument("--top", type=float, default=0.01, help="target fraction of the space")
  parser.add_argument("--max-steps", type=int, default=1000, help="journal nodes per run, duplicates included")
  parser.add_argument("--noise-layouts", type=int, default=32, help="random layouts re-scored with seed 1")
  parser.add_argument("--quick", action="store_true", help="depth 6, 5 seeds, 8 noise layouts")
  args = parser.parse_args()
  if args.quick:
    args.depth, args.seeds, args.noise_layouts = 6, 5, 8
  args.cache = args.cache or (f"/tmp/aira_search_efficiency_{args.space}{args.depth}_{args.task}_{args.steps}steps"
                              ".json")
  start = time.perf_counter()
  print(f"space {args.space} depth {args.depth}, mad-lite task {args.task}, {args.steps} steps, cache {args.cache}")
  cache = score_space(args)
  scores = cache["scores"]
  n, k = len(scores), top_k(len(scores), args.top)
  valid = sorted((v for v in scores.values() if v is not None), reverse=True)
  threshold = valid[k - 1]
  targets = {t for t, v in scores.items() if v is not None and v >= threshold}
  print(f"{n} layouts scored with seed 0 ({cache['seconds']:.0f} s of evaluation; {n - len(valid)} diverged); "
        f"scores {valid[-1]:.4f}..{valid[0]:.4f}, sd {statistics.pstdev(valid):.4f}")
  print(f"targets (top {100 * args.top:g}%: score >= {threshold:.4f}, the score ranked {k}): {len(targets)}: "
        + ", ".join(f"{t} {scores[t]:.4f}" for t in sorted(targets, key=lambda t: -scores[t])))
  seed1 = cache["noise_scores"]
  pairs = np.array([(scores[t], seed1[t]) for t in cache["noise_layouts"]
                    if scores[t] is not None and seed1.get(t) is not None])
  if len(pairs) > 2:
    diff = pairs[:, 1] - pairs[:, 0]
    print(f"seed noise on {len(pairs)} random layouts re-scored with seed 1: per-score sd "
          f"{diff.std(ddof=1) / math.sqrt(2):.4f} (seed 1 - seed 0 mean {diff.mean():+.4f}), against a spread "
          f"(sd over the space) of {statistics.pstdev(valid):.4f}; Pearson r(seed 0, seed 1) "
          f"{np.corrcoef(pairs.T)[0, 1]:.2f}")
    print("  targets re-scored with seed 1: " + ", ".join(
        f"{t} {seed1[t]:.4f} (beats {np.mean(pairs[:, 1] < seed1[t]):.0%} of the random layouts' seed-1 scores)"
        for t in sorted(targets, key=lambda t: -scores[t]) if seed1.get(t) is not None))
  rng = random.Random(0)
  prior = [draft(args.space, args.depth, rng).text for _ in range(20000)]
  print(f"the heuristic draft prior puts {np.mean([t in targets for t in prior]):.2%} of its draws on the targets "
        f"(uniform: {len(targets) / n:.2%}); mean attention fraction of the targets "
        f"{np.mean([t.count('A') / args.depth for t in targets]):.2f}, of the prior "
        f"{np.mean([t.count('A') / args.depth for t in prior]):.2f}")
  exact_mean, exact_median = exact_random(n, len(targets))
  rows = []
  for policy in ["random", *args.policies.split(",")]:
    hits, nodes = [], []
    for seed in range(args.seeds):
      if policy == "random":
        order = random.Random(seed).sample(sorted(scores), n)
        hit = next(i + 1 for i, t in enumerate(order) if t in targets)
        hits.append(hit), nodes.append(hit)
      else:
        hit, m = search_run(policy.strip(), scores, targets, args, seed)
        hits.append(hit), nodes.append(m)
    rows.append((policy, hits, nodes))
  print(f"\nevaluations (distinct layouts) to reach a top-{100 * args.top:g}% layout, {args.seeds} seeds; cap "
        f"{args.max_steps} journal nodes; random exact: mean {exact_mean:.1f}, median {exact_median}")
  print("| policy | reached | median evals | mean evals ± s.e. (reached runs) | range | median journal nodes to hit | "
        "median vs random | mean vs random |")
  print("|---|---|---|---|---|---|---|---|")
  for policy, hits, nodes in rows:
    reached = [h for h in hits if h != math.inf]
    median = float(np.median(hits))
    mean = statistics.mean(reached) if reached else math.inf
    error = statistics.stdev(reached) / math.sqrt(len(reached)) if len(reached) > 1 else math.nan
    show = lambda x: "not reached" if x == math.inf else f"{x:g}"  # noqa: E731
    print(f"| {policy} | {len(reached)}/{len(hits)} | {show(median)} | {show(round(mean, 1))} ± {error:.1f} | "
          f"{min(hits):g}-{show(max(hits))} | {show(float(np.median(nodes)))} | {median / exact_median:.2f}x | "
          f"{mean / exact_mean:.2f}x |")
  print("vs random = over random search's exact median / mean; mean counts reached runs only; not reached = "
        "the run hit the journal-node cap first.")
  print(f"Run time {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
  main()
