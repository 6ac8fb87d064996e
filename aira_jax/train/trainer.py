"""The training loop: budgets, periodic evaluation, divergence detection, logging, progress and checkpoints.

`train(model, batches, optimizer, budget, ...)` splits the model (`nnx.split`), places parameters and optimizer
state on the mesh by the logical-axis rules, compiles the one jit'd step (`compile_train_step`) and runs it on
the batches until a budget is reached:
- steps, tokens (input tokens processed), FLOPs (`flops_per_step` x steps) or wall-clock seconds; the clock
  starts after the first (compiling) step, as autoresearch does, and compile time is reported apart;
- a non-finite loss or gradient norm stops the run with status "diverged" (checked every step: one scalar
  read per step);
- Ctrl-C stops it with status "interrupted" after the current step (a checkpoint is written if a
  checkpointer is given), so nothing done is lost: a KeyboardInterrupt, or under
  `aira_jax.faults.stop_on_ctrl_c` (the CLIs) the stop flag, checked before every step.
Evaluation runs every `eval_every` steps and at the end through a caller-provided `evaluate(params)`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import optax
from flax import nnx

from aira_jax.faults import check_stop
from aira_jax.train.data import global_batch
from aira_jax.train.loggers import MetricLogger
from aira_jax.train.mesh import MeshConfig, make_mesh, place_train_state
from aira_jax.train.step import compile_train_step


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
  """What a run did. `status`: "completed" (a budget was reached), "diverged", "interrupted" or
  "data exhausted"; `seconds` excludes the first (compiling) step, timed in `compile_seconds`."""

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


def train(model: nnx.Module, batches: Iterator[dict[str, np.ndarray]], optimizer: optax.GradientTransformation,
          budget: Budget, *, mesh=None, flops_per_step: float | None = None, eval_every: int | None = None,
          evaluate: Callable[[Any], dict[str, float]] | None = None, logger: MetricLogger | None = None,
          log_every: int = 10, progress=None, checkpointer=None, checkpoint_every: int | None = None,
          data_state: Callable[[], Any] | None = None, params=None, opt_state=None, start_step: int = 0,
          **step_kwargs) -> TrainResult:
  """Trains `model` on `batches` until `budget` is reached (see the module docstring).

  Args:
    model: the Flax NNX model (its graph and initial parameters).
    batches: yields this process's {"inputs", "targets"} (B_local, L) int32 numpy batches.
    optimizer: from `make_optimizer`.
    mesh: default `make_mesh(MeshConfig())` over all devices.
    flops_per_step: needed for `max_flops` (e.g. `flops_per_token(..., training=True) * tokens per step`).
    eval_every / evaluate: `evaluate(params) -> metrics` every `eval_every` steps and at the end.
    logger / log_every / progress: metrics sink, its period, and a `ProgressDisplay` (both optional).
    checkpointer / checkpoint_every / data_state: `Checkpointer` saves (params, opt_state, data_state()) every
      `checkpoint_every` steps and at the end.
    params, opt_state, start_step: resume from restored state instead of the model's initial parameters.
    step_kwargs: grad_accum_steps, parallel_branches, z_loss, compute_dtype (see `train_step`).
  """
  if budget.max_flops is not None and flops_per_step is None:
    raise ValueError("max_flops needs flops_per_step (e.g. flops_per_token(..., training=True) * tokens/step)")
  mesh = mesh if mesh is not None else make_mesh(MeshConfig())
  graphdef, initial = nnx.split(model)
  params = initial if params is None else params
  opt_state = optimizer.init(params) if opt_state is None else opt_state
  params, opt_state = place_train_state(params, opt_state, mesh)

  steps, tokens, flops, seconds, compile_seconds = start_step, 0, 0.0, 0.0, 0.0
  evals: list[tuple[int, dict[str, float]]] = []
  metrics: dict[str, float] = {}
  step_fn, status, reason = None, "completed", None
  clock_start = None
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
      batch = global_batch(local, mesh)
      if step_fn is None:
        step_fn = compile_train_step(graphdef, optimizer, mesh, params, opt_state, batch, **step_kwargs)
      started = time.perf_counter()
      params, opt_state, step_metrics = step_fn(params, opt_state, batch)
      loss, grad_norm = float(step_metrics["loss"]), float(step_metrics["grad_norm"])  # syncs once per step
      if clock_start is None:
        compile_seconds = time.perf_counter() - started
        clock_start = time.perf_counter()
      else:
        seconds = time.perf_counter() - clock_start
      steps += 1
      tokens += int(batch["inputs"].size)
      flops += flops_per_step or 0.0
      if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        status, reason = "diverged", f"non-finite loss {loss} / grad norm {grad_norm} at step {steps}"
        metrics = {"loss": loss, "grad_norm": grad_norm}
        break
      if logger is not None and steps % log_every == 0:
        metrics = {k: float(v) for k, v in step_metrics.items()}
        logger.log(steps, metrics)
      if progress is not None:
        progress.update(steps, loss=loss)
      if evaluate is not None and eval_every and steps % eval_every == 0:
        evals.append((steps, dict(evaluate(params))))
        if logger is not None:
          logger.log(steps, {f"eval/{k}": v for k, v in evals[-1][1].items()})
      if checkpointer is not None and checkpoint_every and steps % checkpoint_every == 0:
        checkpointer.save(steps, params, opt_state, data_state() if data_state else None)
  except KeyboardInterrupt:
    status, reason = "interrupted", f"interrupted (Ctrl-C) after step {steps}"
  if status != "diverged":
    metrics = {k: float(v) for k, v in step_metrics.items()} if step_fn is not None else {}
    if evaluate is not None and steps > start_step and (not evals or evals[-1][0] != steps):
      evals.append((steps, dict(evaluate(params))))
    if checkpointer is not None and steps > start_step:
      checkpointer.save(steps, params, opt_state, data_state() if data_state else None, force=True)
      checkpointer.wait()
  if progress is not None:
    progress.close()
  return TrainResult(status=status, stop_reason=reason or "", steps=steps, tokens=tokens, flops=flops,
                     seconds=seconds, compile_seconds=compile_seconds, final_metrics=metrics, evals=evals,
                     params=params, opt_state=opt_state)
