"""Per-candidate cost of the design sandbox's isolation and trusted scoring, against an earlier commit.

    python experiments/bench/sandbox_overhead.py [--baseline-ref d926692] [--tasks lra,autoresearch] [--repeats 2]

One run, one machine: the baseline commit (in-process scoring, process-only sandbox) is checked out into a
temporary git worktree; each configuration - baseline, this tree with `isolation=process`, this tree with
`isolation=bwrap` - evaluates its task's default honest candidate (the template) in a child process of its
own, the configurations taking turns, `--repeats` times each. Seconds are the evaluator's wall clock per
candidate (sandbox start to result: for the new code both phases and the trusted scoring; the one-off data
preparation of the new code is printed apart). The table gives mean and spread, the ratio to the baseline and
the metric of every repeat (LRA trains a fixed number of steps: identical metrics are expected; autoresearch
trains for a wall-clock budget, so its val_bpb varies run to run).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHILD = r"""
import json, sys, time
from aira_jax.design.tasks import make_design_task
from aira_jax.design.evaluator import CandidateEvaluator
from aira_jax.design.sandbox import SandboxLimits
task_name, isolation = sys.argv[1], sys.argv[2]
task = make_design_task(task_name)
kwargs = {} if isolation == "baseline" else {"isolation": isolation}
evaluator = CandidateEvaluator(task, SandboxLimits(timeout_s=task.timeout_s), **kwargs)
prepare = 0.0
if isolation != "baseline":
  started = time.perf_counter(); evaluator.scorer; prepare = time.perf_counter() - started
started = time.perf_counter()
result = evaluator.run(task.template)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "prepare": prepare, "metric": result.metrics.get(task.metric),
                  "error": result.error}))
"""
TASKS = {"lra": "lra-listops", "autoresearch": "autoresearch"}


def run_child(tree: pathlib.Path, task: str, config: str) -> dict:
  env = {**os.environ, "PYTHONPATH": str(tree), "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", CHILD, task, config], env=env, capture_output=True, text=True,
                        cwd=tree)
  if proc.returncode != 0:
    raise SystemExit(f"{config} on {task} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--baseline-ref", default="d926692", help="the commit before trusted scoring")
  parser.add_argument("--tasks", default="lra,autoresearch")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  worktree = pathlib.Path(tempfile.mkdtemp(prefix="aira-baseline-"))
  subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline_ref], cwd=ROOT, check=True,
                 capture_output=True)
  configs = {"baseline": worktree, "process": ROOT, "bwrap": ROOT}
  try:
    rows = []
    for key in args.tasks.split(","):
      runs = {config: [] for config in configs}
      for repeat in range(args.repeats):
        for config, tree in configs.items():
          runs[config].append(run_child(tree, TASKS[key], config))
          print(f"{key} {config} #{repeat}: {runs[config][-1]}", file=sys.stderr, flush=True)
      base = statistics.mean(r["seconds"] for r in runs["baseline"])
      for config, results in runs.items():
        seconds = [r["seconds"] for r in results]
        rows.append([key, config, f"{statistics.mean(seconds):.1f}",
                     f"{(max(seconds) - min(seconds)) / 2:.1f}", f"{statistics.mean(seconds) / base:.3f}",
                     f"{statistics.mean(r['prepare'] for r in results):.1f}",
                     " ".join("-" if r["metric"] is None else f"{r['metric']:.4f}" for r in results)])
    header = ["task", "config", "s/candidate", "+/- (half range)", "ratio", "prepare s (once)", "metric per repeat"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
      print("| " + " | ".join(row) + " |")
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
  main()
