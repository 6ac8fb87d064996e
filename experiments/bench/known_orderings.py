"""Known orderings: does the compose proxy fitness rank 16-layer layouts the way MAD does?

MAD (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures") found hybrids that mix attention with other layers at the top
of mean MAD accuracy, and layouts without token mixing (MLP only) at the bottom. This script scores a handful
of 16-layer AM layouts with the project's own `LayoutEvaluator` on MAD-lite (its default tasks) at the default
evaluator's model and training settings (width 32, batch 16, lr 3e-3, 128 validation rows, switch mode;
--steps defaults to the evaluator's default steps; --tasks changes the task list) and prints, per layout, the mean MAD-lite accuracy and
each task's accuracy over k seeds with a 95% Student-t interval, the ranking, and the paired difference to the
best layout with its 95% t interval.

Method: seeds 0..k-1 (from --seed-start); each seed is one evaluation of every layout, and a seed fixes the
parameter initialisation and the batch order (common random numbers), so layouts are compared by paired
differences over seeds. The task data are the same for every evaluation (`EvaluatorConfig.seed` 0). Layouts
run seed by seed, so a stopped run has equal seeds for all. "Tied with the best" = the 95% t interval of the
paired difference to the best contains 0; the same test is applied to every pair for the list of tied pairs.

  python experiments/bench/known_orderings.py [--seeds 3] [--seed-start 0] [--tasks in_context_recall,...]
      [--layouts 16M,16A,...] [--json out.json]
Runs about 3-4 min on 2 CPU cores with the defaults (7 layouts x 3 seeds, about 6 s per evaluation).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import jax
import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from aira_jax.compose.config import EvaluatorConfig  # noqa: E402
from aira_jax.compose.evaluator import LayoutEvaluator  # noqa: E402
from aira_jax.compose.families import COMPOSER_16, llama_layout  # noqa: E402
from aira_jax.layout import Layout  # noqa: E402

DEPTH = 16
DEFAULT_LAYOUTS = {
    "16M": "MLP only",
    "16A": "attention only",
    llama_layout(DEPTH).text: "alternating A/M (Llama-like)",
    COMPOSER_16: "Composer's 16-layer hybrid",
    "3A+13M": "3 attention layers first",
    "2A+14M": "2 attention layers first",
    "13M+3A": "3 attention layers last",
}
DESCRIPTIONS = {Layout.parse(text).text: what for text, what in DEFAULT_LAYOUTS.items()}  # by per-layer text


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
  """(mean, low, high) of a Student-t interval for the mean of `values` (n >= 2)."""
  values = np.asarray(values, float)
  n = len(values)
  mean = float(values.mean())
  half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
  return mean, mean - half, mean + half


def short(text: str) -> str:
  """A layout's run-length form ("2A+5M+2A+3M+1A+3M") up to 6 runs, else its per-layer text."""
  layout = Layout.parse(text)
  runs = layout.run_length()
  return runs if runs.count("+") < 6 else layout.text


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, default=3, help="seeds per layout, k (at least 2)")
  parser.add_argument("--seed-start", type=int, default=0, help="first seed")
  parser.add_argument("--tasks", default=",".join(EvaluatorConfig.mad_tasks),
                      help="MAD-lite tasks (default: the evaluator's default mad_tasks)")
  parser.add_argument("--layouts", default=",".join(DEFAULT_LAYOUTS), help="16-layer AM layouts, comma-separated")
  parser.add_argument("--steps", type=int, default=EvaluatorConfig().steps,
                      help="training steps per evaluation (default: the evaluator's default)")
  parser.add_argument("--json", help="write the raw scores here")
  args = parser.parse_args()
  if args.seeds < 2:
    parser.error("--seeds must be at least 2 for a t interval")
  tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
  config = EvaluatorConfig(task="mad-lite", task_options={}, mad_tasks=tasks, steps=args.steps)
  evaluator = LayoutEvaluator(config, space="AM", depth=DEPTH, devices=jax.devices()[:1])
  layouts = [evaluator.parse(t.strip()).text for t in args.layouts.split(",") if t.strip()]
  if len(set(layouts)) != len(layouts):
    parser.error("--layouts: the same layout twice")
  seeds = list(range(args.seed_start, args.seed_start + args.seeds))
  start = time.perf_counter()
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}), {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; MAD-lite tasks {', '.join(tasks)}; model {dict(config.model)}, {config.steps} "
        f"steps x batch {config.batch_size}, lr {config.lr}, {config.eval_examples} validation rows, depth {DEPTH}, "
        f"mode {evaluator.mode}; seeds {seeds[0]}-{seeds[-1]}", flush=True)

  metric = {t: [] for t in layouts}  # layout -> MAD-lite score per seed
  per_task = {t: {task: [] for task in tasks} for t in layouts}
  for seed in seeds:
    for text in layouts:
      evaluation = evaluator.evaluate(text, seed=seed)
      if evaluation.is_buggy:
        raise SystemExit(f"{short(text)} seed {seed}: {evaluation.error}")
      metric[text].append(evaluation.metric)
      for task in tasks:
        per_task[text][task].append(evaluation.per_task[task])
      tasks_text = ", ".join(f"{v:.3f}" for v in evaluation.per_task.values())
      print(f"  seed {seed} {short(text):18s} {evaluation.metric:.4f} ({tasks_text})  {evaluation.seconds:5.1f} s "
            f"({evaluation.compile_seconds:.1f} s compiling)", flush=True)

  means = {t: t_interval(metric[t]) for t in layouts}
  ranked = sorted(layouts, key=lambda t: -means[t][0])
  best = ranked[0]
  versus_best = {t: t_interval(np.asarray(metric[t]) - np.asarray(metric[best])) for t in ranked[1:]}
  tied_with_best = [t for t in ranked[1:] if versus_best[t][1] <= 0 <= versus_best[t][2]]

  print(f"\n{len(layouts)} layouts x {len(seeds)} seeds (paired: the same seeds for every layout); "
        f"mean [95% t interval]; accuracy, higher is better")
  print("| rank | layout | what | attention layers | MAD-lite mean | " + " | ".join(tasks)
        + " | minus best: mean [95% t] | tied with best |")
  print("|---|---|---|---|---|" + "---|" * len(tasks) + "---|---|")
  for rank, text in enumerate(ranked, start=1):
    m, low, high = means[text]
    cells = []
    for task in tasks:
      tm, tl, th = t_interval(per_task[text][task])
      cells.append(f"{tm:.3f} [{tl:.3f}, {th:.3f}]")
    if text == best:
      diff, tied = "(best)", "-"
    else:
      d, dl, dh = versus_best[text]
      diff, tied = f"{d:+.3f} [{dl:+.3f}, {dh:+.3f}]", "yes" if text in tied_with_best else "no"
    print(f"| {rank} | {short(text)} | {DESCRIPTIONS.get(text, '')} | "
          f"{text.count('A')} | {m:.3f} [{low:.3f}, {high:.3f}] | " + " | ".join(cells) + f" | {diff} | {tied} |")

  tied_pairs = []
  for a, b in itertools.combinations(ranked, 2):
    _, low, high = t_interval(np.asarray(metric[a]) - np.asarray(metric[b]))
    if low <= 0 <= high:
      tied_pairs.append(f"{short(a)} ~ {short(b)}")
  is_hybrid = {t: "A" in t and "M" in t for t in layouts}
  top_group = [best] + tied_with_best
  verdict = (f"best {short(best)} ({'a hybrid with attention' if is_hybrid[best] else 'not a hybrid'}); "
             f"tied with it: {', '.join(short(t) for t in tied_with_best) or 'none'}; ")
  if all(is_hybrid[t] for t in top_group):
    verdict += "every layout in the top group is a hybrid with attention"
  else:
    others = [short(t) for t in top_group if not is_hybrid[t]]
    verdict += f"the top group also holds non-hybrids ({', '.join(others)})"
  leading = next((i for i, t in enumerate(ranked) if not is_hybrid[t]), len(ranked))
  verdict += (f"; by mean, the top {leading} of {len(ranked)} are hybrids with attention, then "
              + ", ".join(f"{short(t)} (#{ranked.index(t) + 1})" for t in ranked[leading:])
              if leading else "; by mean, the first layout is not a hybrid")
  separated = [short(t) for t in ranked[1:] if t not in tied_with_best]
  verdict += f"; below the best with 95% confidence: {', '.join(separated) or 'none'}"
  print(f"\nVerdict: {verdict}.")
  print(f"Statistically tied pairs (95% t interval of the paired difference contains 0): "
        f"{'; '.join(tied_pairs) or 'none'}.")
  print(f"Run time {time.perf_counter() - start:.0f} s; load average at the end {os.getloadavg()[0]:.2f}.")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(tasks=tasks, seeds=seeds, metric=metric, per_task=per_task, config=dict(
          steps=config.steps, batch_size=config.batch_size, optimizer=config.optimizer, eval_examples=config.eval_examples,
          model=dict(config.model))), f, indent=1)


if __name__ == "__main__":
  main()
