"""The one training loop: preflight, budgets, the schedule, periodic evaluation, divergence, logging, checkpoints.

Every training run of the project goes through `Trainer` (the compose evaluator, the compose scale stage on
CPU and on accelerators, and `train` for a model of your own). A `Trainer` holds one model graph, optimizer and
mesh; `run(params, opt_state, batches, budget, ...)`:
- compiles the step ahead (`jit_train_step(...).lower(...).compile()`) once per input signature and keeps
  the compiled program, so many runs of any length share one compile (the schedule is an input, see
  train/optimizers.py); this is the preflight: XLA's memory analysis is checked against the device's memory
  and a run that cannot fit ends with status "does not fit" ("does not fit: needs X GiB of Y GiB per
  device ...") before its first step, and XLA's FLOPs are recorded next to the analytic count;
- stops at a budget: steps, tokens (input tokens processed), FLOPs (`flops_per_step` x steps) or wall-clock
  seconds (the clock starts after the first step; compile time is reported apart);
- stops with status "diverged" on a non-finite loss or gradient norm (read every `check_every` steps: one
  device sync each);
- stops with status "interrupted" on Ctrl-C (a KeyboardInterrupt, or the stop flag of
  `aira_jax.faults.stop_on_ctrl_c`, checked before every step), after saving a checkpoint when given one.
Evaluation runs every `eval_every` steps and at the end through a caller-provided `evaluate(params)`;
`Trainer.score` scores parameters on rows of a split in fixed-size batches with the jitted eval step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from aira_jax.faults import check_stop
from aira_jax.train.data import global_batch
from aira_jax.train.evaluate import score_in_batches
from aira_jax.train.loggers import MetricLogger
from aira_jax.train.mesh import MeshConfig, make_mesh, place_train_state, replicated
from aira_jax.train.optimizers import OptimizerConfig, lr_multiplier, make_optimizer
from aira_jax.train.preflight import (PreflightError, PreflightReport, check_fits, device_memory_bytes,
                                      report_compiled)
from aira_jax.train.step import ModelInputs, jit_eval_step, jit_train_step, lm_forward, split_params


@dataclasses.dataclass(frozen=True)
class Budget:
  """When to stop; None = no limit. At least one must be set."""

  max_steps: int | None = None
  max_tokens: int | None = None
  max_flops: float | None = None
  max_seconds: float | None = None

  def __post_init__(self):
    if all(v is None for v in dataclasses.astuple(self)):
      raise ValueError("give at least one budget: max_steps, max_tokens, max_flops or max_seconds")


@dataclasses.dataclass
class TrainResult:
  """What a run did. `status`: "completed" (a budget was reached), "diverged", "interrupted", "data exhausted"
  or "does not fit" (refused by the preflight before any step); `seconds` excludes compiling, timed in
  `compile_seconds` (0 when the run reused a compiled step). `preflight`: what compiling the step told
  (FLOPs next to the analytic count, memory per device); `notes`: anything a reader should know (e.g. XLA's
  FLOPs far from the analytic count)."""

  status: str
  stop_reason: str
  steps: int
  tokens: int
  flops: float
  seconds: float
  compile_seconds: float
  final_metrics: dict[str, float]
  evals: list[tuple[int, dict[str, float]]]
  params: Any
  opt_state: Any
  preflight: PreflightReport | None = None
  notes: tuple[str, ...] = ()


def _budget_reason(budget: Budget, steps: int, tokens: int, flops: float, seconds: float) -> str | None:
  if budget.max_steps is not None and steps >= budget.max_steps:
    return f"step budget ({budget.max_steps})"
  if budget.max_tokens is not None and tokens >= budget.max_tokens:
    return f"token budget ({budget.max_tokens})"
  if budget.max_flops is not None and flops >= budget.max_flops:
    return f"FLOP budget ({budget.max_flops:.3g})"
  if budget.max_seconds is not None and seconds >= budget.max_seconds:
    return f"time budget ({budget.max_seconds:g} s)"
  return None


FLOPS_RATIO_RANGE = (0.5, 2.0)
"""XLA's FLOPs over the analytic count outside this range is noted in the run's result."""


def _signature(*trees) -> tuple:
  """What a compiled step is specialised to: tree structures, shapes, dtypes and shardings of its inputs."""
  leaves, structure = jax.tree.flatten(trees)
  return (structure, tuple((np.shape(x), getattr(x, "dtype", None) or np.asarray(x).dtype,
                            getattr(x, "sharding", None)) for x in leaves))


class Trainer:
  """One model graph, optimizer and mesh, and the loop that trains with them (module docstring).

  Args:
    graphdef: the model's static graph (`nnx.split(model)[0]`); a model whose call takes more than the tokens
      gets those inputs per run (`model_inputs`, e.g. the switch model's layer kinds).
    optimizer: from `make_optimizer` (its `lr_scale` hyperparameter carries the schedule), or any optax
      transformation (then `lr_scale` is ignored and its own schedule applies).
    mesh: default `make_mesh(MeshConfig())` over all devices.
    metrics_fn: `metrics_fn(logits, targets)` for `score` / `eval` (default: `lm_loss`'s metrics).
    forward: `forward(model, batch, model_inputs) -> logits` (default `lm_forward`; e.g. a classifier's call).
    eval_graphdef: the graph `score` / `eval` run (default `graphdef`; e.g. the model in eval mode, dropout off).
    device_memory: bytes per device the preflight checks against; "auto" reads the mesh's first device
      (None on CPU: not checked).
    step_kwargs: grad_accum_steps, parallel_branches, z_loss, compute_dtype (see `train_step`).
  """

  def __init__(self, graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, *, mesh=None,
               metrics_fn: Callable | None = None, forward: Callable = lm_forward,
               eval_graphdef: nnx.GraphDef | None = None, device_memory: int | None | str = "auto", label: str = "",
               **step_kwargs):
    self.graphdef, self.optimizer, self.forward = graphdef, optimizer, forward
    self.eval_graphdef = graphdef if eval_graphdef is None else eval_graphdef
    self.mesh = mesh if mesh is not None else make_mesh(MeshConfig())
    self.metrics_fn, self.step_kwargs, self.label = metrics_fn, step_kwargs, label
    self.device_memory = (device_memory_bytes(self.mesh.devices.flat[0]) if device_memory == "auto"
                          else device_memory)
    self.compile_seconds = 0.0  # summed over every compile of the train and eval steps
    self._step_fn = None
    self._eval_fn = None
    self._eval_compiled: set[tuple] = set()
    self._compiled: dict[tuple, PreflightReport] = {}

  def init(self, params, opt_state=None) -> tuple[Any, Any]:
    """(params, opt_state) placed on the mesh by the logical-axis rules. `params` is the model's state; opt_state
    is `optimizer.init` of its `nnx.Param` part when not given."""
    opt_state = self.optimizer.init(split_params(params)[0]) if opt_state is None else opt_state
    return place_train_state(params, opt_state, self.mesh)

  def model_inputs(self, model_inputs: ModelInputs | None) -> ModelInputs:
    """The model inputs as replicated arrays on the mesh."""
    return jax.device_put(dict(model_inputs or {}), replicated(self.mesh))

  def compile(self, params, opt_state, batch, model_inputs: ModelInputs) -> tuple[Any, PreflightReport, float]:
    """(step, its preflight report, seconds spent compiling now: 0 when reused) for these inputs' signature.
    The step is compiled ahead (lower + compile) and checked against the device's memory; the returned jitted
    function then dispatches to that executable (jax caches it: no second compile) through jit's fast path.
    Raises PreflightError when the step does not fit the device's memory or fails to compile."""
    key = _signature(params, opt_state, batch, model_inputs)
    if key in self._compiled:
      return self._step_fn, self._compiled[key], 0.0
    if self._step_fn is None:
      self._step_fn = jit_train_step(self.graphdef, self.optimizer, self.mesh, params, opt_state, forward=self.forward,
                                     **self.step_kwargs)
    started = time.perf_counter()
    try:
      lowered = self._step_fn.lower(params, opt_state, batch, model_inputs, np.float32(1.0))
      lowered_at = time.perf_counter()
      compiled = lowered.compile()
    except Exception as error:
      what = f"{self.label}: " if self.label else ""
      raise PreflightError(f"{what}compiling the train step failed: {type(error).__name__}: {error}") from error
    seconds = time.perf_counter() - started
    self.compile_seconds += seconds
    report = report_compiled(compiled, label=self.label, params=params, lower_seconds=lowered_at - started,
                             compile_seconds=seconds - (lowered_at - started))
    check_fits(report, self.device_memory)
    self._compiled[key] = report
    return self._step_fn, report, seconds

  def run(self, params, opt_state, batches: Iterator[dict[str, np.ndarray]], budget: Budget, *,
          lr_scale: Callable[[int], float] | None = None, model_inputs: ModelInputs | None = None,
          check_every: int = 1, flops_per_step: float | None = None, eval_every: int | None = None,
          evaluate: Callable[[Any], dict[str, float]] | None = None, logger: MetricLogger | None = None,
          log_every: int = 10, progress=None, checkpointer=None, checkpoint_every: int | None = None,
          data_state: Callable[[], Any] | None = None, start_step: int = 0,
          analytic_flops_per_step: float | None = None) -> TrainResult:
    """Trains from (params, opt_state) (placed by `init`; donated) on `batches` until `budget` (module docstring).

    Args:
      batches: yields this process's {"inputs", "targets"} (B_local, L) int32 numpy batches.
      lr_scale: 0-based step -> the schedule's factor (e.g. `functools.partial(lr_multiplier, config,
        total_steps=n)`); default 1.0.
      model_inputs: the model's keyword inputs besides the tokens, the same for every step.
      check_every: read the loss (and check it is finite) every this many steps and at the last.
      flops_per_step: needed for `max_flops`.
      eval_every / evaluate: `evaluate(params) -> metrics` every `eval_every` steps and at the end.
      logger / log_every / progress: metrics sink, its period, and a `ProgressDisplay` (both optional).
      checkpointer / checkpoint_every / data_state: `Checkpointer` saves (params, opt_state, data_state())
        every `checkpoint_every` steps and at the end.
      start_step: the step the restored state was saved at (the schedule continues from it).
      analytic_flops_per_step: the analytic FLOPs of one step, recorded in the preflight report next to XLA's
        count (a ratio outside `FLOPS_RATIO_RANGE` is noted).
    """
    if budget.max_flops is not None and flops_per_step is None:
      raise ValueError("max_flops needs flops_per_step (e.g. flops_per_token(..., training=True) * tokens/step)")
    inputs = self.model_inputs(model_inputs)
    steps, tokens, flops, seconds, compile_seconds = start_step, 0, 0.0, 0.0, 0.0
    evals: list[tuple[int, dict[str, float]]] = []
    notes: list[str] = []
    step_metrics, report, status, reason = None, None, "completed", None
    compiled, clock_start = None, None
    try:
      while True:
        check_stop()
        reason = _budget_reason(budget, steps - start_step, tokens, flops, seconds)
        if reason is not None:
          break
        try:
          local = next(batches)
        except StopIteration:
          status, reason = "data exhausted", "the batch iterator ended"
          break
        batch = global_batch(local, self.mesh)
        if compiled is None:
          try:
            compiled, report, compile_seconds = self.compile(params, opt_state, batch, inputs)
          except PreflightError as error:
            status, reason = "does not fit", str(error)
            if "does not fit" not in reason:
              raise
            break
          report = dataclasses.replace(report, analytic_flops=analytic_flops_per_step)
          notes += _flops_notes(report)
          clock_start = time.perf_counter()
        scale = np.float32(1.0 if lr_scale is None else lr_scale(steps))
        params, opt_state, step_metrics = compiled(params, opt_state, batch, inputs, scale)
        steps += 1
        tokens += int(batch["inputs"].size)
        flops += flops_per_step or 0.0
        last = _budget_reason(budget, steps - start_step, tokens, flops, 0.0) is not None
        if steps % check_every == 0 or last:
          loss, grad_norm = (float(v) for v in jax.device_get((step_metrics["loss"], step_metrics["grad_norm"])))
          if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            status, reason = "diverged", f"non-finite loss {loss} / grad norm {grad_norm} at step {steps}"
            break
          if progress is not None:
            progress.update(steps, loss=loss)
        seconds = time.perf_counter() - clock_start
        if logger is not None and steps % log_every == 0:
          logger.log(steps, {k: float(v) for k, v in step_metrics.items()})
        if evaluate is not None and eval_every and steps % eval_every == 0:
          evals.append((steps, dict(evaluate(params))))
          if logger is not None:
            logger.log(steps, {f"eval/{k}": v for k, v in evals[-1][1].items()})
        if checkpointer is not None and checkpoint_every and steps % checkpoint_every == 0:
          checkpointer.save(steps, params, opt_state, data_state() if data_state else None)
    except KeyboardInterrupt:
      status, reason = "interrupted", f"interrupted (Ctrl-C) after step {steps}"
    metrics = {k: float(v) for k, v in step_metrics.items()} if step_metrics is not None else {}
    if status not in ("diverged", "does not fit"):
      if evaluate is not None and steps > start_step and (not evals or evals[-1][0] != steps):
        evals.append((steps, dict(evaluate(params))))
      if checkpointer is not None and steps > start_step:
        checkpointer.save(steps, params, opt_state, data_state() if data_state else None, force=True)
        checkpointer.wait()
    if progress is not None:
      progress.close()
    return TrainResult(status=status, stop_reason=reason or "", steps=steps, tokens=tokens, flops=flops,
                       seconds=seconds, compile_seconds=compile_seconds, final_metrics=metrics, evals=evals,
                       params=params, opt_state=opt_state, preflight=report, notes=tuple(notes))

  def eval(self, params, batch: dict[str, np.ndarray], model_inputs: ModelInputs | None = None):
    """`metrics_fn(logits, targets)` of `eval_graphdef` on one batch (this process's rows); the first call per
    batch shape compiles, timed into `compile_seconds`."""
    if self._eval_fn is None:
      self._eval_fn = jit_eval_step(self.eval_graphdef, self.mesh, params, self.metrics_fn, self.forward)
    placed = self.model_inputs(model_inputs)
    key = (_signature(params, placed), tuple(np.shape(x) for x in batch.values()))
    if key in self._eval_compiled:
      return self._eval_fn(params, global_batch(batch, self.mesh), placed)
    started = time.perf_counter()
    out = jax.block_until_ready(self._eval_fn(params, global_batch(batch, self.mesh), placed))
    self.compile_seconds += time.perf_counter() - started
    self._eval_compiled.add(key)
    return out

  def score(self, params, inputs: np.ndarray, targets: np.ndarray, batch_size: int,
            model_inputs: ModelInputs | None = None) -> dict[str, float]:
    """`metrics_fn` over the rows (inputs, targets), `batch_size` rows at a time (`score_in_batches`)."""
    return score_in_batches(lambda batch: self.eval(params, batch, model_inputs), inputs, targets, batch_size)


def _flops_notes(report: PreflightReport | None) -> list[str]:
  """A note when XLA's FLOPs are far from the analytic count (`FLOPS_RATIO_RANGE`)."""
  ratio = None if report is None else report.flops_ratio
  if ratio is None or FLOPS_RATIO_RANGE[0] <= ratio <= FLOPS_RATIO_RANGE[1]:
    return []
  return [f"XLA counts {ratio:.2f}x the analytic FLOPs of a step ({report.flops * report.num_devices:.3g} against "
          f"{report.analytic_flops:.3g}): the analytic count misses work this model does"]


def train(model: nnx.Module, batches: Iterator[dict[str, np.ndarray]],
          optimizer: OptimizerConfig | optax.GradientTransformation, budget: Budget, *, mesh=None,
          lr_scale: Callable[[int], float] | None = None, params=None, opt_state=None, start_step: int = 0,
          device_memory: int | None | str = "auto", **kwargs) -> TrainResult:
  """Trains `model` on `batches` until `budget` with a fresh `Trainer` (see `Trainer.run` for the keywords).

  Args:
    model: the Flax NNX model (its graph and initial parameters).
    optimizer: an `OptimizerConfig` (built with `make_optimizer`; its schedule runs over `budget.max_steps`
      steps when set, else over `config.total_steps`), or an optax transformation (with `lr_scale`).
    mesh: default `make_mesh(MeshConfig())` over all devices.
    params, opt_state, start_step: resume from restored state instead of the model's initial parameters.
  Other keywords go to `Trainer` (metrics_fn, forward, eval_graphdef, label, grad_accum_steps,
  parallel_branches, z_loss, compute_dtype) or `Trainer.run` (model_inputs, check_every, flops_per_step,
  analytic_flops_per_step, eval_every, evaluate, logger, log_every, progress, checkpointer, checkpoint_every,
  data_state).
  """
  graphdef, initial = nnx.split(model)
  params = initial if params is None else params
  if isinstance(optimizer, OptimizerConfig):
    config, optimizer = optimizer, make_optimizer(optimizer, split_params(params)[0])
    if lr_scale is None:
      total = budget.max_steps + start_step if budget.max_steps is not None else None
      lr_scale = lambda step: lr_multiplier(config, step, total)  # noqa: E731
  elif lr_scale is None and "lr_scale" in getattr(jax.eval_shape(optimizer.init, split_params(params)[0]),
                                                  "hyperparams", {}):
    raise ValueError("this optimizer's schedule is its lr_scale input: pass the OptimizerConfig itself (its "
                     "schedule then runs over the budget's steps) or lr_scale=lambda step: ...")
  trainer_keys = ("metrics_fn", "forward", "eval_graphdef", "label", "grad_accum_steps", "parallel_branches",
                  "z_loss", "compute_dtype")
  trainer = Trainer(graphdef, optimizer, mesh=mesh, device_memory=device_memory,
                    **{k: kwargs.pop(k) for k in trainer_keys if k in kwargs})
  params, opt_state = trainer.init(params, opt_state)
  return trainer.run(params, opt_state, batches, budget, lr_scale=lr_scale, start_step=start_step, **kwargs)
