"""Search throughput: layout evaluations per hour of the compose evaluator, "switch" against "dedicated" mode.

What one search step costs is one `LayoutEvaluator.evaluate`: train the layout from fresh parameters on the
proxy task and score it. "switch" compiles one program per task for every layout of the search's depth and
space; "dedicated" compiles one per layout (aira_jax/compose/programs.py). This script measures both on the
evaluator config the search uses (the `EvaluatorConfig` defaults: mad-lite, width 32; --steps, --task).

Method: `--layouts` N distinct layouts are drafted with `aira_jax.compose.heuristic.draft` (seeded, 16 layers
in space AM by default); each mode gets a fresh `LayoutEvaluator`, both alive in the same process, and the
evaluations alternate A B A B (layout i in switch, then layout i in dedicated), every one with seed 0.
The table reports per mode: the first evaluation (it pays data generation and, in switch mode, the only
compile), the mean of the later ones (in dedicated mode each pays its own compile), evaluations per hour in
the steady state (3600 / later mean) and over all N (3600 N / total seconds, compile included), the share of
the time spent compiling (`Evaluation.compile_seconds`: the first call of the step and score functions,
which includes one step's run time), and the evaluations-per-hour ratio over dedicated.

  python experiments/bench/search_throughput.py [--layouts 6] [--quick] [--steps N] [--task mad-lite]
      [--depth 16] [--space AM] [--modes switch,dedicated] [--seed 0] [--executor local|ray] [--rounds 3]
--quick: 3 layouts. Runs ~3 min on 2 CPU cores with the defaults.
--executor ray: instead of the modes, compare the executors (switch mode): this process against Ray actors at
1 and 2 workers, and Ray's overhead per evaluation (executor_throughput.py; needs the [ray] extra).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from aira_jax.compose.config import EvaluatorConfig  # noqa: E402
from aira_jax.compose.evaluator import LayoutEvaluator  # noqa: E402
from aira_jax.compose.heuristic import draft  # noqa: E402


def distinct_layouts(space: str, depth: int, count: int, seed: int) -> list[str]:
  """`count` distinct drafts from the heuristic prior, in draw order."""
  rng, layouts = random.Random(seed), []
  for _ in range(1000 * count):
    text = draft(space, depth, rng).text
    if text not in layouts:
      layouts.append(text)
    if len(layouts) == count:
      return layouts
  raise ValueError(f"could not draw {count} distinct layouts of depth {depth} in {space}")


def summarize(mode: str, evaluations) -> dict:
  """The table row of one mode: the first evaluation apart, the later ones (>= 1) averaged."""
  seconds = [e.seconds for e in evaluations]
  later = seconds[1:]
  total = sum(seconds)
  return dict(mode=mode, n=len(seconds), first=seconds[0], first_compile=evaluations[0].compile_seconds,
              later=statistics.mean(later), later_min=min(later), later_max=max(later),
              later_train=statistics.mean([e.seconds - e.compile_seconds for e in evaluations[1:]]),
              steady_per_h=3600 / statistics.mean(later), all_per_h=3600 * len(seconds) / total,
              compile_share=100 * sum(e.compile_seconds for e in evaluations) / total,
              buggy=sum(e.is_buggy for e in evaluations))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--layouts", type=int, default=6, help="distinct layouts evaluated in each mode")
  parser.add_argument("--quick", action="store_true", help="3 layouts")
  parser.add_argument("--steps", type=int, default=EvaluatorConfig.steps, help="training steps per task")
  parser.add_argument("--task", default=EvaluatorConfig.task, help="mad-lite or a registered task name")
  parser.add_argument("--depth", type=int, default=16)
  parser.add_argument("--space", default="AM")
  parser.add_argument("--modes", default="switch,dedicated")
  parser.add_argument("--seed", type=int, default=0, help="seed of the layout draws")
  parser.add_argument("--executor", choices=("local", "ray"), default="local",
                      help="ray: compare local x1 with Ray actors x1 and x2 (executor_throughput.py)")
  parser.add_argument("--rounds", type=int, default=3, help="timed rounds per configuration (--executor ray)")
  args = parser.parse_args()
  count = 3 if args.quick else args.layouts
  if count < 2:
    parser.error("--layouts must be at least 2 (one first evaluation and one later)")
  modes = [m.strip() for m in args.modes.split(",")]
  start = time.perf_counter()
  config = EvaluatorConfig(task=args.task, steps=args.steps)
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}), {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; task {args.task} ({', '.join(config.mad_tasks) if args.task == 'mad-lite' else ''})"
        f", model {dict(config.model)}, {args.steps} steps x batch {config.batch_size}, depth {args.depth}, "
        f"space {args.space}")
  if args.executor == "ray":
    import executor_throughput
    drawn = distinct_layouts(args.space, args.depth, count + 2, args.seed)
    executor_throughput.run(config, args.space, args.depth, drawn[2:], drawn[:2], args.rounds)
    return
  layouts = distinct_layouts(args.space, args.depth, count, args.seed)
  evaluators = {m: LayoutEvaluator(EvaluatorConfig(task=args.task, steps=args.steps, mode=m), space=args.space,
                                   depth=args.depth) for m in modes}
  results = {m: [] for m in modes}
  cpu_seconds = {m: 0.0 for m in modes}
  for i, layout in enumerate(layouts):
    for mode in modes:
      cpu = time.process_time()
      evaluation = evaluators[mode].evaluate(layout, seed=0)
      results[mode].append(evaluation)
      cpu_seconds[mode] += time.process_time() - cpu
      score = "buggy" if evaluation.is_buggy else f"{evaluation.metric:.4f}"
      print(f"  {i + 1}/{count} {mode:9s} {layout}  {score}  {evaluation.seconds:6.2f} s "
            f"({evaluation.compile_seconds:.2f} s compiling)", flush=True)
  rows = [summarize(m, results[m]) for m in modes]
  reference = next((r for r in rows if r["mode"] == "dedicated"), None)
  print(f"\n{count} distinct {args.depth}-layer layouts per mode, alternated between modes, seed 0 each")
  print("| mode | layouts | first eval s (compile s) | later evals: mean s (min-max) | of which not compiling s | "
        "evals/h steady | evals/h over N | compile share | evals/h over N vs dedicated |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    ratio = f"{r['all_per_h'] / reference['all_per_h']:.2f}x" if reference else "-"
    print(f"| {r['mode']} | {r['n']} | {r['first']:.1f} ({r['first_compile']:.1f}) | {r['later']:.2f} "
          f"({r['later_min']:.2f}-{r['later_max']:.2f}) | {r['later_train']:.2f} | {r['steady_per_h']:,.0f} | "
          f"{r['all_per_h']:,.0f} | {r['compile_share']:.0f}% | {ratio} |")
  if any(r["buggy"] for r in rows):
    print("buggy evaluations: " + ", ".join(f"{r['mode']} {r['buggy']}" for r in rows))
  print("CPU seconds of this process per evaluation (all threads; wall time x 2 would be full use of 2 cores): "
        + ", ".join(f"{m} {cpu_seconds[m] / count:.1f}" for m in modes))
  print(f"Run time {time.perf_counter() - start:.0f} s; load average at the end {os.getloadavg()[0]:.2f} "
        "(other processes share the cores: compare modes within one run).")


if __name__ == "__main__":
  main()
