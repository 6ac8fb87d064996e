"""Compose search throughput of this tree against an earlier commit, measured in one run.

What changed between two commits can only be timed honestly on the same machine under the same load, so the
two trees are measured in alternating rounds (B A B A ...: before, after): each round is a fresh subprocess that
builds a `LayoutEvaluator` at the `EvaluatorConfig` defaults (switch mode unless --mode) from that tree, and
evaluates the same `--layouts` distinct layouts with seed 0. A round reports its first (compiling) evaluation
and the mean of the later ones. The table gives, per tree, the mean over rounds of the later-evaluation mean
with a 95% t interval, evaluations per hour in the steady state, the first evaluation, and the after / before
ratio of steady-state evaluations per hour with a 95% interval from the paired rounds (round i of each tree
ran back to back).

  python experiments/bench/throughput_before_after.py --rev a034933 [--rounds 3] [--layouts 4] [--mode switch]
The earlier tree is checked out with `git worktree add` under a temporary folder (removed at the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time

from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parents[2]

WORKER = r"""
import json, sys, time
from aira_jax.compose.config import EvaluatorConfig
from aira_jax.compose.evaluator import LayoutEvaluator
layouts, mode, depth, space = json.loads(sys.argv[1])
evaluator = LayoutEvaluator(EvaluatorConfig(mode=mode), space=space, depth=depth)
out = []
for text in layouts:
  e = evaluator.evaluate(text, seed=0)
  out.append({"seconds": e.seconds, "compile": e.compile_seconds, "metric": e.metric})
print("RESULT " + json.dumps(out))
"""


def distinct_layouts(space: str, depth: int, count: int, seed: int) -> list[str]:
  """`count` distinct random layouts (uniform per layer) of `depth` over `space`, seeded."""
  rng, layouts = random.Random(seed), []
  while len(layouts) < count:
    text = "".join(rng.choice(space) for _ in range(depth))
    if text not in layouts:
      layouts.append(text)
  return layouts


def run_round(tree: pathlib.Path, layouts: list[str], mode: str, depth: int, space: str) -> list[dict]:
  """One fresh process of `tree` evaluating `layouts`; its per-evaluation seconds."""
  env = {**os.environ, "PYTHONPATH": str(tree)}
  done = subprocess.run([sys.executable, "-c", WORKER, json.dumps([layouts, mode, depth, space])], cwd=tree, env=env,
                        capture_output=True, text=True, check=False)
  line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
  if done.returncode or line is None:
    raise SystemExit(f"the round in {tree} failed:\n{done.stderr[-3000:]}")
  return json.loads(line[len("RESULT "):])


def mean_ci(values: list[float]) -> tuple[float, float]:
  """Mean and the half-width of its 95% t interval (0 for one value)."""
  mean = statistics.fmean(values)
  if len(values) < 2:
    return mean, 0.0
  return mean, stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rev", required=True, help="the earlier commit (e.g. the one before a change)")
  parser.add_argument("--rounds", type=int, default=3, help="rounds per tree, alternated")
  parser.add_argument("--layouts", type=int, default=4, help="distinct layouts per round (>= 2)")
  parser.add_argument("--mode", default="switch", choices=("switch", "dedicated"))
  parser.add_argument("--depth", type=int, default=16)
  parser.add_argument("--space", default="AM")
  args = parser.parse_args()
  if args.layouts < 2 or args.rounds < 1:
    parser.error("need --layouts >= 2 and --rounds >= 1")
  layouts = distinct_layouts(args.space, args.depth, args.layouts, seed=0)
  started = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    before = pathlib.Path(tmp) / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.rev], check=True,
                   capture_output=True)
    try:
      trees = {"before": before, "after": ROOT}
      rounds = {name: [] for name in trees}
      metrics = {name: None for name in trees}
      for number in range(args.rounds):
        for name, tree in trees.items():
          result = run_round(tree, layouts, args.mode, args.depth, args.space)
          later = statistics.fmean(r["seconds"] for r in result[1:])
          rounds[name].append({"first": result[0]["seconds"], "compile": result[0]["compile"], "later": later})
          metrics[name] = [r["metric"] for r in result]
          print(f"round {number + 1} {name:6s}: first {result[0]['seconds']:.2f} s ({result[0]['compile']:.2f} s "
                f"compiling), later mean {later:.2f} s", flush=True)
    finally:
      subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False,
                     capture_output=True)
  print(f"\nrev {args.rev} (before) against this tree (after): {args.rounds} alternated rounds x {args.layouts} "
        f"layouts of {args.depth} layers over {args.space}, {args.mode} mode, EvaluatorConfig defaults, seed 0; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")
  print("| tree | first eval s (compile s) | later evals: mean s (95% CI) | evals/h steady |")
  print("|---|---|---|---|")
  for name, rows in rounds.items():
    mean, half = mean_ci([r["later"] for r in rows])
    first = statistics.fmean(r["first"] for r in rows)
    compile_s = statistics.fmean(r["compile"] for r in rows)
    print(f"| {name} | {first:.1f} ({compile_s:.1f}) | {mean:.2f} ({mean - half:.2f}-{mean + half:.2f}) | "
          f"{3600 / mean:,.0f} |")
  ratios = [b["later"] / a["later"] for b, a in zip(rounds["before"], rounds["after"])]
  mean, half = mean_ci(ratios)
  verdict = ("within 5% of before (or faster)" if mean - half >= 0.95 else
             "more than 5% below before" if mean + half < 0.95 else
             "undetermined at this noise: run more rounds on a quieter machine")
  print(f"after / before evaluations per hour (paired rounds): {mean:.3f} (95% CI {mean - half:.3f}-"
        f"{mean + half:.3f}): {verdict}")
  print("metrics of the layouts (last round): before " + ", ".join(f"{m:.4f}" for m in metrics["before"]) +
        "; after " + ", ".join(f"{m:.4f}" for m in metrics["after"]))
  print(f"run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
  main()
