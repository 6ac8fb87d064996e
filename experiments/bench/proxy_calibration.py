"""Proxy calibration: how well does each candidate proxy of compose's evaluator rank layouts like a scaled-up target?

The search optimises the proxy fitness (`LayoutEvaluator` at the `EvaluatorConfig` defaults). This script
evaluates every (layout, setting, seed) of a study (experiments/compose/calibration.yaml) through
`LayoutEvaluator`, the target included, and compares each proxy's ranking of the layouts (its score, mean over
seeds) with the target's (mean over its seeds) by Spearman's rho, with a percentile bootstrap CI over layouts.
It also reports each setting's own seed-to-seed rho (mean over seed pairs), the ceiling a single-seed search
could reach, and its cost in CPU minutes (wall seconds of its evaluations / 60, compiles included).

Scores are oriented so that higher is better (val_bpb is negated). A layout with a failed ("diverged")
evaluation in a setting is left out of that setting's comparisons, and the table says how many layouts remain.

Resumable: each finished evaluation is appended to the JSONL cache (--out) at once; a rerun skips every
(setting, config fingerprint, layout, seed) already there, so a killed run loses at most one evaluation.

  python experiments/bench/proxy_calibration.py [--config experiments/compose/calibration.yaml]
      [--out results.jsonl] [--only-proxies a,b] [--no-target] [--plan] [--report-only]
--plan: times two evaluations of each setting on the first depth-16 layouts (one compile + one steady; they
are kept in the cache), then prints the estimated wall time of the whole study and stops.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "experiments" / "compose" / "calibration.yaml"


# ---------------------------------------------------------------------------------------------- statistics


def rankdata(values: Sequence[float]) -> np.ndarray:
  """1-based ranks of `values`, ties given their average rank (scipy.stats.rankdata's "average")."""
  x = np.asarray(values, np.float64)
  n = len(x)
  order = np.argsort(x, kind="mergesort")
  ordered = x[order]
  starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
  ends = np.concatenate([starts[1:], [n]])
  ranks = np.empty(n, np.float64)
  ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
  return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman's rho of paired samples (Pearson correlation of average ranks); nan if either side is constant
  or there are fewer than 2 pairs."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1:
    raise ValueError(f"spearman needs two 1-d arrays of one length, got shapes {x.shape} and {y.shape}")
  if len(x) < 2:
    return float("nan")
  rx, ry = rankdata(x), rankdata(y)
  rx, ry = rx - rx.mean(), ry - ry.mean()
  denominator = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
  return float(np.sum(rx * ry) / denominator) if denominator > 0 else float("nan")


def bootstrap_indices(n: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
  """(resamples, n) row indices drawn with replacement; reuse one draw to compare statistics pairwise."""
  return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_spearman(x: Sequence[float], y: Sequence[float], resamples: int = 2000, level: float = 0.9,
                       seed: int = 0, indices: np.ndarray | None = None) -> tuple[float, float]:
  """Percentile bootstrap CI (`level`, two-sided) of Spearman's rho, resampling the pairs with replacement.
  Resamples whose rho is undefined (one side constant) are dropped; (nan, nan) if all are."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  indices = bootstrap_indices(len(x), resamples, seed) if indices is None else indices
  rhos = np.array([spearman(x[i], y[i]) for i in indices])
  return percentile_interval(rhos, level)


def percentile_interval(samples: np.ndarray, level: float = 0.9) -> tuple[float, float]:
  """The central `level` percentile interval of the finite samples; (nan, nan) if there are none."""
  samples = np.asarray(samples, np.float64)
  samples = samples[np.isfinite(samples)]
  if len(samples) == 0:
    return float("nan"), float("nan")
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(samples, [tail, 100 - tail])
  return float(low), float(high)


def paired_bootstrap_difference(x1: Sequence[float], x2: Sequence[float], y: Sequence[float],
                                indices: np.ndarray, level: float = 0.9) -> tuple[float, float]:
  """CI of rho(x1, y) - rho(x2, y) over the same layout resamples (both proxies scored on the same layouts)."""
  x1, x2, y = (np.asarray(v, np.float64) for v in (x1, x2, y))
  differences = np.array([spearman(x1[i], y[i]) - spearman(x2[i], y[i]) for i in indices])
  return percentile_interval(differences, level)


def mean_pairwise_spearman(rows: Sequence[Sequence[float]]) -> float:
  """Mean Spearman rho over all pairs of rows (e.g. one row of layout scores per seed); nan with < 2 rows."""
  rhos = [spearman(a, b) for a, b in itertools.combinations(rows, 2)]
  rhos = [r for r in rhos if np.isfinite(r)]
  return float(np.mean(rhos)) if rhos else float("nan")


# ------------------------------------------------------------------------------------------------ the study


def load_study(path: str | Path) -> dict:
  """The study: layouts (canonical text, depth, space, as written), settings {name: (EvaluatorConfig, seeds,
  is_target)} in run order (target first), the compute layout and bootstrap settings."""
  from aira_jax.compose.config import EvaluatorConfig
  from aira_jax.config_io import from_mapping, read_yaml
  from aira_jax.layout import Layout
  raw = read_yaml(path)
  layouts = []
  for text in raw["layouts"]:
    layout = Layout.parse(str(text))
    layouts.append(dict(text=layout.text, written=str(text), depth=layout.depth,
                        space="AMS" if "S" in layout.symbols else "AM"))
  if len({l["text"] for l in layouts}) != len(layouts):
    raise ValueError("calibration layouts must be distinct")
  target = raw["target"]
  settings = {target["name"]: dict(config=from_mapping(EvaluatorConfig, target.get("evaluator") or {},
                                                       "target.evaluator"),
                                   seeds=[int(s) for s in target["seeds"]], is_target=True)}
  for name, overrides in raw["proxies"].items():
    settings[name] = dict(config=from_mapping(EvaluatorConfig, overrides or {}, f"proxies.{name}"),
                          seeds=[int(s) for s in raw.get("proxy_seeds", [0, 1, 2])], is_target=False)
  return dict(layouts=layouts, settings=settings, target=target["name"],
              compute_layout=raw.get("compute_layout", "8AM"),
              bootstrap={"resamples": 2000, "level": 0.9, "seed": 0, **(raw.get("bootstrap") or {})})


def fingerprint(config) -> str:
  """A short hash of an EvaluatorConfig's values (cached results are reused only for identical settings)."""
  from aira_jax.config_io import to_plain
  return hashlib.sha256(json.dumps(to_plain(config), sort_keys=True).encode()).hexdigest()[:12]


def training_flops(config, layout: str) -> float:
  """Training FLOPs of one evaluation of `layout` under `config`: over its tasks, flops_per_token(training)
  x steps x batch_size x seq_len (the tasks are built, not trained)."""
  from aira_jax.compose.evaluator import proxy_tasks
  from aira_jax.models.counting import flops_per_token
  from aira_jax.models.presets import preset_config
  base = preset_config(config.preset, **dict(config.model))
  total = 0.0
  for task in proxy_tasks(config).values():
    seq = task.spec.seq_len
    model = base.replace(vocab_size=task.spec.vocab_size, max_seq_len=max(seq, base.max_seq_len))
    total += flops_per_token(layout, model, seq, training=True) * config.steps * config.batch_size * seq
  return total


def default_flops(study: dict) -> float:
  """Training FLOPs of the study's reference proxy (the first one, "mad_default": MAD-lite at 60 steps, the
  evaluator's default when the study was designed) on the study's compute layout."""
  first = next(name for name in study["settings"] if name != study["target"])
  return training_flops(study["settings"][first]["config"], study["compute_layout"])


def read_cache(path: Path) -> dict[tuple, dict]:
  """Cached records keyed by (setting, fingerprint, layout, seed); a torn last line (killed run) is skipped."""
  records = {}
  if path.exists():
    for line in path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      records[(record["setting"], record["fingerprint"], record["layout"], record["seed"])] = record
  return records


def append_record(path: Path, record: dict) -> None:
  """Appends one JSON line and flushes it to disk."""
  with path.open("a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


class Runner:
  """Evaluates the study's (setting, layout, seed) triples, one LayoutEvaluator per (setting, depth, space)."""

  def __init__(self, study: dict, out: Path):
    self.study, self.out = study, out
    self.cache = read_cache(out)
    self.evaluators = {}
    self.started = time.perf_counter()

  def evaluator(self, name: str, depth: int, space: str):
    from aira_jax.compose.evaluator import LayoutEvaluator
    key = (name, depth, space)
    if key not in self.evaluators:
      self.evaluators[key] = LayoutEvaluator(self.study["settings"][name]["config"], space=space, depth=depth)
    return self.evaluators[key]

  def evaluate(self, name: str, layout: dict, seed: int, progress: str = "") -> dict:
    """The cached record of (name, layout, seed), or a fresh evaluation appended to the cache."""
    setting = self.study["settings"][name]
    key = (name, fingerprint(setting["config"]), layout["text"], seed)
    if key in self.cache:
      return self.cache[key]
    evaluator = self.evaluator(name, layout["depth"], layout["space"])
    e = evaluator.evaluate(layout["text"], seed=seed)
    record = dict(setting=name, fingerprint=key[1], layout=layout["text"], written=layout["written"],
                  depth=layout["depth"], space=layout["space"], seed=seed, metric=e.metric,
                  lower_is_better=evaluator.lower_is_better, per_task=e.per_task, is_buggy=e.is_buggy,
                  error=e.error, seconds=e.seconds, compile_seconds=e.compile_seconds, time=time.time())
    append_record(self.out, record)
    self.cache[key] = record
    score = "failed: " + str(e.error) if e.is_buggy else f"{e.metric:.4f}"
    print(f"{progress} {name} d{layout['depth']} seed {seed} {layout['written']}: {score} "
          f"{e.seconds:.1f} s ({e.compile_seconds:.1f} compiling); elapsed "
          f"{(time.perf_counter() - self.started) / 60:.1f} min", flush=True)
    return record

  def jobs(self, names: Sequence[str]) -> list[tuple[str, dict, int]]:
    """Every (setting, layout, seed) to run, grouped by setting, then (depth, space), then seed."""
    groups = sorted({(l["depth"], l["space"]) for l in self.study["layouts"]}, key=lambda g: (-g[0], g[1]))
    jobs = []
    for name in names:
      for depth, space in groups:
        group = [l for l in self.study["layouts"] if (l["depth"], l["space"]) == (depth, space)]
        for seed in self.study["settings"][name]["seeds"]:
          jobs.extend((name, layout, seed) for layout in group)
    return jobs

  def run(self, names: Sequence[str]) -> None:
    jobs = self.jobs(names)
    todo = [j for j in jobs if (j[0], fingerprint(self.study["settings"][j[0]]["config"]), j[1]["text"], j[2])
            not in self.cache]
    print(f"{len(jobs)} evaluations, {len(jobs) - len(todo)} cached, {len(todo)} to run", flush=True)
    for i, (name, layout, seed) in enumerate(todo, start=1):
      self.evaluate(name, layout, seed, progress=f"[{i}/{len(todo)}]")
      if name != (todo[i][0] if i < len(todo) else None):  # a setting is done: free its compiled programs
        self.evaluators = {k: v for k, v in self.evaluators.items() if k[0] != name}

  def plan(self, names: Sequence[str]) -> None:
    """Times two evaluations per setting (first depth-16 AM group) and estimates the whole study's wall time."""
    layouts = self.study["layouts"]
    depth = max(l["depth"] for l in layouts)
    first_two = [l for l in layouts if l["depth"] == depth and l["space"] == "AM"][:2]
    groups = sorted({(l["depth"], l["space"]) for l in layouts})
    total = 0.0
    print("| setting | FLOPs x mad_default | first eval s (compile s) | steady eval s | evaluations | groups | "
          "estimated min |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in names:
      setting = self.study["settings"][name]
      first, second = (self.evaluate(name, l, setting["seeds"][0], progress="[plan]") for l in first_two)
      if first["seconds"] < second["seconds"]:  # both cached from an earlier run in another order
        first, second = second, first
      steady = second["seconds"]
      compile_s = max(first["seconds"] - steady, 0.0)
      # Steady time scales with depth (a rough model: layers dominate at these widths); one compile per group.
      evals = sum(steady * l["depth"] / depth for l in layouts) * len(setting["seeds"])
      estimate = evals + compile_s * len(groups)
      total += estimate
      rows.append((name, first, compile_s, steady, len(layouts) * len(setting["seeds"]), estimate))
    reference = default_flops(self.study)
    for name, first, compile_s, steady, count, estimate in rows:
      ratio = training_flops(self.study["settings"][name]["config"], self.study["compute_layout"]) / reference
      print(f"| {name} | {ratio:.2f} | {first['seconds']:.1f} ({compile_s:.1f}) | {steady:.1f} | {count} | "
            f"{len(groups)} | {estimate / 60:.1f} |")
    print(f"Estimated total: {total / 60:.1f} min of wall time (at this load: "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


# ------------------------------------------------------------------------------------------------- report


def score_matrix(study: dict, records: dict, name: str) -> tuple[list[str], np.ndarray]:
  """(layouts, seeds x layouts matrix of scores oriented higher = better, nan where missing or failed)."""
  setting = study["settings"][name]
  fp = fingerprint(setting["config"])
  texts = [l["text"] for l in study["layouts"]]
  matrix = np.full((len(setting["seeds"]), len(texts)), np.nan)
  for i, seed in enumerate(setting["seeds"]):
    for j, text in enumerate(texts):
      record = records.get((name, fp, text, seed))
      if record is not None and not record["is_buggy"] and record["metric"] is not None:
        matrix[i, j] = -record["metric"] if record["lower_is_better"] else record["metric"]
  return texts, matrix


def setting_seconds(study: dict, records: dict, name: str) -> tuple[float, int, float]:
  """(wall seconds summed over the setting's evaluations, their number, compile seconds among them)."""
  fp = fingerprint(study["settings"][name]["config"])
  found = [r for (s, f, _, _), r in records.items() if s == name and f == fp]
  return sum(r["seconds"] for r in found), len(found), sum(r["compile_seconds"] for r in found)


def fmt(value: float, spec: str = ".2f") -> str:
  return "-" if value is None or not np.isfinite(value) else format(value, spec)


def report(study: dict, records: dict, names: Sequence[str]) -> None:
  """Prints the markdown table of every proxy setting in `names` against the target, and a verdict."""
  boot = study["bootstrap"]
  target = study["target"]
  texts, target_matrix = score_matrix(study, records, target)
  depth = {l["text"]: l["depth"] for l in study["layouts"]}
  target_mean = target_matrix.mean(axis=0)  # nan where any target seed is missing
  reference = default_flops(study)
  t_seconds, t_count, _ = setting_seconds(study, records, target)
  t_flops = training_flops(study["settings"][target]["config"], study["compute_layout"]) / reference
  t_ok = np.isfinite(target_mean)
  t_seed_rho = mean_pairwise_spearman(target_matrix[:, t_ok])
  print(f"\nTarget {target}: {t_flops:.2f}x the reference proxy's (mad_default) training FLOPs, {t_count} evaluations, "
        f"{t_seconds / 60:.1f} CPU min; {int(t_ok.sum())} of {len(texts)} layouts scored by every seed; "
        f"seed-to-seed rho {fmt(t_seed_rho)} (mean over {len(target_matrix) * (len(target_matrix) - 1) // 2} "
        "seed pair(s))")
  deepest = max(depth.values())
  print(f"\n| proxy | FLOPs x mad_default | evals | CPU min (compile) | layouts | rho vs target "
        f"[{boot['level']:.0%} CI] | rho, depth {deepest} only [CI] | seed-to-seed rho | rho / CPU min | goal |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  results = {}
  for name in names:
    if name == target:
      continue
    _, matrix = score_matrix(study, records, name)
    mean = matrix.mean(axis=0)
    keep = np.isfinite(mean) & t_ok
    x, y = mean[keep], target_mean[keep]
    indices = bootstrap_indices(int(keep.sum()), boot["resamples"], boot["seed"])
    rho = spearman(x, y) if keep.sum() >= 3 else float("nan")
    low, high = bootstrap_spearman(x, y, level=boot["level"], indices=indices) if keep.sum() >= 3 else (np.nan,) * 2
    deep = keep & np.array([depth[t] == deepest for t in texts])
    rho_deep = spearman(mean[deep], target_mean[deep]) if deep.sum() >= 3 else float("nan")
    dlow, dhigh = (bootstrap_spearman(mean[deep], target_mean[deep], boot["resamples"], boot["level"],
                                      boot["seed"]) if deep.sum() >= 3 else (np.nan, np.nan))
    seed_rho = mean_pairwise_spearman(matrix[:, np.isfinite(mean)])
    seconds, count, compile_s = setting_seconds(study, records, name)
    minutes = seconds / 60
    flops = training_flops(study["settings"][name]["config"], study["compute_layout"]) / reference
    goal = "yes" if rho >= 0.8 and low > 0.5 else "no"
    results[name] = dict(rho=rho, low=low, high=high, keep=keep, mean=mean)
    print(f"| {name} | {flops:.2f} | {count} | {minutes:.1f} ({compile_s / 60:.1f}) | {int(keep.sum())} | "
          f"{fmt(rho)} [{fmt(low)}, {fmt(high)}] | {fmt(rho_deep)} [{fmt(dlow)}, {fmt(dhigh)}] | {fmt(seed_rho)} | "
          f"{fmt(rho / minutes if minutes else float('nan'), '.3f')} | {goal} |")
  scored = {n: r for n, r in results.items() if np.isfinite(r["rho"])}
  if not scored:
    print("\nVerdict: no proxy has a defined rho yet.")
    return
  best = max(scored, key=lambda n: scored[n]["rho"])
  b = scored[best]
  notes = []
  for name, r in scored.items():
    if name == best:
      continue
    keep = b["keep"] & r["keep"]
    indices = bootstrap_indices(int(keep.sum()), boot["resamples"], boot["seed"])
    dlow, dhigh = paired_bootstrap_difference(b["mean"][keep], r["mean"][keep], target_mean[keep], indices,
                                              boot["level"])
    overlap = r["high"] >= b["low"]
    verdict = ("tied (CIs overlap and the paired difference's CI holds 0)" if overlap and dlow <= 0 else
               f"CIs overlap, but the paired difference's CI excludes 0: {best} is better" if overlap else
               f"{best} is better (CIs do not overlap)")
    notes.append(f"{name} (rho {fmt(r['rho'])}): {verdict}; paired bootstrap of rho({best}) - rho({name}) "
                 f"[{fmt(dlow)}, {fmt(dhigh)}]")
  print(f"\nVerdict: best proxy by rho: {best} (rho {fmt(b['rho'])} [{fmt(b['low'])}, {fmt(b['high'])}]); "
        f"against the others: " + "; ".join(notes) + "." if notes else ".")
  print(f"\nPer layout: score (mean over seeds; higher is better, val_bpb negated) and rank (1 = best) among "
        f"the {len(texts)} layouts")
  shown = [target] + list(results)
  print("| layout | depth | " + " | ".join(shown) + " |")
  print("|---|---|" + "---|" * len(shown))
  means = {target: target_mean, **{n: r["mean"] for n, r in results.items()}}
  ranks = {n: np.where(np.isfinite(m), len(m) + 1 - rankdata(np.nan_to_num(m, nan=-np.inf)), np.nan)
           for n, m in means.items()}
  written = {l["text"]: l["written"] for l in study["layouts"]}
  for j in np.argsort(ranks[target], kind="stable"):
    cells = [f"{fmt(means[n][j], '.4f')} ({fmt(ranks[n][j], '.0f')})" for n in shown]
    print(f"| {written[texts[j]]} | {depth[texts[j]]} | " + " | ".join(cells) + " |")


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the study YAML")
  parser.add_argument("--out", default="results.jsonl", help="JSONL cache of evaluations (appended, resumable)")
  parser.add_argument("--only-proxies", default=None, help="comma-separated proxy settings to run and report")
  parser.add_argument("--no-target", action="store_true", help="do not run the target (report from the cache)")
  parser.add_argument("--plan", action="store_true", help="time two evaluations per setting, estimate, stop")
  parser.add_argument("--report-only", action="store_true", help="print the table from the cache, run nothing")
  args = parser.parse_args(argv)
  sys.path.insert(0, str(REPO))
  import jax
  study = load_study(args.config)
  proxies = [n for n in study["settings"] if n != study["target"]]
  if args.only_proxies:
    chosen = [n.strip() for n in args.only_proxies.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in proxies]
    if unknown:
      parser.error(f"--only-proxies: unknown {', '.join(unknown)}; the study has {', '.join(proxies)}")
    proxies = chosen
  names = ([] if args.no_target else [study["target"]]) + proxies
  out = Path(args.out)
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}), {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; {len(study['layouts'])} layouts, settings {', '.join(names)}; cache {out}",
        flush=True)
  runner = Runner(study, out)
  started = time.perf_counter()
  if args.plan:
    runner.plan(names)
    return
  if not args.report_only:
    runner.run(names)
    print(f"Run time {(time.perf_counter() - started) / 60:.1f} min; load average at the end "
          f"{os.getloadavg()[0]:.2f}", flush=True)
  report(study, read_cache(out), proxies)


if __name__ == "__main__":
  main()
