"""Search throughput by executor: layout evaluations per hour here (local) against Ray actors (1 and 2 workers).

`search_throughput.py --executor ray` runs this. Every configuration evaluates the same `--layouts` distinct
drafted layouts with the search's evaluator settings (switch mode), `workers` at a time from as many threads
(as the search's evaluation queue does):

  local x1   a `LayoutEvaluator` in this process (the default backend; on CPU the search uses one worker);
  ray x1     a `RayLayoutEvaluator` with one `LayoutWorker` actor on a private Ray instance of this machine;
  ray x2     the same with two actors.

Before timing, each configuration evaluates one warm-up layout per worker (the compile of its switch program
and the actor's start), reported apart. Then `--rounds` rounds time the N layouts in each configuration, the
configurations in rotated order from round to round, so drift in the machine's load falls on all of them.
Reported per configuration: evaluations per hour in the steady state (mean over rounds, 95% t interval), the
ratio to local x1 (mean of the per-round ratios, 95% t interval), and for Ray the overhead per evaluation:
the wall time of a call seen by the driver minus the evaluation's own time measured inside the actor
(`Evaluation.seconds`), i.e. what dispatch, serialisation and the return cost. All configurations live in one
process and one Ray instance; metrics are checked to be identical across configurations.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import statistics
import time
import warnings

from scipy import stats

from aira_jax.compose.config import EvaluatorConfig
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.compose.remote import LayoutWorker, RayLayoutEvaluator
from aira_jax.executor import ExecutorConfig
from aira_jax.executor.ray_pool import WorkerPool


def _interval(values: list[float]) -> tuple[float, float, float]:
  """Mean and 95% Student-t interval (nan half-widths with one value)."""
  mean = statistics.fmean(values)
  if len(values) < 2:
    return mean, math.nan, math.nan
  half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
  return mean, mean - half, mean + half


def _timed_block(evaluator: LayoutEvaluator, layouts: list[str], workers: int):
  """Evaluates `layouts` `workers` at a time: (wall seconds, evaluations, driver-side seconds per call)."""
  def one(layout: str):
    started = time.perf_counter()
    evaluation = evaluator.evaluate(layout, 0)
    return evaluation, time.perf_counter() - started

  started = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(workers) as threads:
    done = list(threads.map(one, layouts))
  return time.perf_counter() - started, [e for e, _ in done], [s for _, s in done]


def run(config: EvaluatorConfig, space: str, depth: int, layouts: list[str], warmups: list[str], rounds: int) -> None:
  import ray
  # Three actors (x1 and x2) stay alive for the whole run, so the instance advertises 3 logical CPUs; Ray pins
  # no cores, and only one configuration runs at a time, sharing the machine's cores as a search would.
  with warnings.catch_warnings():  # JAX's at-fork warning: Ray's processes are forked and exec'd at once
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    ray.init(address="local", num_cpus=max(3, os.cpu_count()), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
  started = time.perf_counter()
  pools = {w: WorkerPool(LayoutWorker, (config, space, depth), size=w, config=ExecutorConfig(backend="ray"))
           for w in (1, 2)}
  configs = {"local x1": (LayoutEvaluator(config, space=space, depth=depth), 1),
             "ray x1": (RayLayoutEvaluator(config, space=space, depth=depth, pool=pools[1]), 1),
             "ray x2": (RayLayoutEvaluator(config, space=space, depth=depth, pool=pools[2]), 2)}
  print(f"Ray {ray.__version__}, private instance; {os.cpu_count()} CPU cores; {len(layouts)} layouts per block, "
        f"{rounds} rounds")
  for name, (evaluator, workers) in configs.items():
    wall, _, _ = _timed_block(evaluator, warmups[:workers], workers)
    print(f"  warm-up {name}: {wall:.1f} s for {workers} evaluation(s) (actor start and compile)", flush=True)
  per_hour = {name: [] for name in configs}
  overhead = {name: [] for name in configs}
  metrics = {name: {} for name in configs}
  names = list(configs)
  for number in range(rounds):
    order = names[number % len(names):] + names[:number % len(names)]
    for name in order:
      evaluator, workers = configs[name]
      wall, evaluations, call_seconds = _timed_block(evaluator, layouts, workers)
      per_hour[name].append(3600 * len(layouts) / wall)
      overhead[name] += [s - e.seconds for e, s in zip(evaluations, call_seconds)]
      metrics[name].update({e.layout: e.metric for e in evaluations})
      print(f"  round {number + 1} {name}: {wall:.1f} s, {per_hour[name][-1]:,.0f} evaluations/h", flush=True)
  identical = all(metrics[name] == metrics["local x1"] for name in names)
  print(f"\nmetrics identical across configurations: {identical}")
  print("| configuration | evaluations/h, steady (95% CI) | vs local x1 (95% CI) | overhead per evaluation s "
        "(mean, sd) |")
  print("|---|---|---|---|")
  verdicts = []
  for name in names:
    mean, low, high = _interval(per_hour[name])
    ratio, r_low, r_high = _interval([a / b for a, b in zip(per_hour[name], per_hour["local x1"])])
    cost = (f"{statistics.fmean(overhead[name]):.3f} ({statistics.stdev(overhead[name]):.3f})"
            if name != "local x1" else "-")
    print(f"| {name} | {mean:,.0f} [{low:,.0f}, {high:,.0f}] | {ratio:.2f}x [{r_low:.2f}, {r_high:.2f}] | {cost} |")
    verdicts.append(f"{name}: " + ("the baseline" if name == "local x1" else "ties local x1 (the interval holds 1)"
                                   if not (r_low > 1 or r_high < 1) else "faster than local x1" if r_low > 1
                                   else "slower than local x1"))
  print("Verdict: " + "; ".join(verdicts) + f" ({rounds} rounds; with fewer than 2 rounds no interval).")
  for pool in pools.values():
    pool.close()
  ray.shutdown()
  print(f"Run time {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
