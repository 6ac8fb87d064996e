"""Compiled training programs for the layout evaluator: init, train step and scoring of one model on one task.

A `TrainingProgram` owns an eager init and two jitted functions for a fixed (task, model config, depth,
space) and, in "dedicated" mode, a fixed layout:
- `init(seed)` -> fresh parameters and optimizer state (re-initialised per candidate and seed);
- `step(params, opt_state, kinds, batch, lr)` -> one Adam step at learning rate `lr` (old state donated);
- `score(params, kinds, batch)` -> the task's metrics on a validation batch.

In "switch" mode the model is `SwitchLanguageModel` and `kinds` (the layout as an int32 array) is an ordinary
argument, so one compilation serves every layout of the search; in "dedicated" mode the model is the layout's
own `LanguageModel` and `kinds` is ignored. Both call the same loss (`aira_jax.train.step.lm_loss`).
The learning rate is an argument computed on the host (`cosine_lr`), so one compiled step serves runs of any
length (the scale stage trains each size for a different number of steps).
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from aira_jax.compose.switch_model import SwitchLanguageModel, layout_kinds
from aira_jax.layout import Layout
from aira_jax.models import LanguageModel
from aira_jax.models.config import ModelConfig
from aira_jax.tasks.base import IGNORE, Task
from aira_jax.train.step import lm_loss


class TrainingProgram:
  """Init / step / score of one model kind on one task; see the module docstring.

  Args:
    task: an "lm"-head task (its metrics name the score).
    config: the model config (vocab_size must equal the task's).
    depth, space: layouts this program trains.
    layout: None for switch mode (any layout of `depth` in `space`), else the one layout (dedicated mode).
  The optimizer is Adam (b1 0.9, b2 0.95, no weight decay) after clipping the global gradient norm to 1.
  """

  def __init__(self, task: Task, config: ModelConfig, *, depth: int, space: str, layout: Layout | None):
    self.task, self.config, self.depth, self.space, self.layout = task, config, depth, space, layout
    self.compile_seconds = 0.0  # summed over first calls of step and score
    abstract = nnx.eval_shape(lambda: self._build(nnx.Rngs(0)))
    self.graphdef = nnx.split(abstract)[0]
    self.optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(b1=0.9, b2=0.95))
    self._step = jax.jit(self._step_impl, donate_argnums=(0, 1))
    self._score = jax.jit(self._score_impl)
    self._compiled: set[str] = set()

  def _build(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.layout is None:
      return SwitchLanguageModel(self.config, self.depth, self.space, rngs=rngs)
    return LanguageModel(self.layout, self.config, rngs=rngs)

  def kinds(self, layout: Layout) -> jax.Array:
    """The layout as the int32 array the switch model takes (a dummy zero array in dedicated mode)."""
    if self.layout is not None:
      if layout != self.layout:
        raise ValueError(f"this dedicated program trains {self.layout.text}, not {layout.text}")
      return jnp.zeros((self.depth,), jnp.int32)
    return jnp.asarray(layout_kinds(layout, self.space))

  def _logits(self, params, kinds, inputs):
    model = nnx.merge(self.graphdef, params)
    return model(inputs) if self.layout is not None else model(inputs, kinds)


  def _step_impl(self, params, opt_state, kinds, batch, lr):
    def loss_fn(p):
      return lm_loss(self._logits(p, kinds, batch["inputs"]), batch["targets"])

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = self.optimizer.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: (p - lr * u).astype(p.dtype), params, updates)
    return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

  def _score_impl(self, params, kinds, batch):
    return self.task.metrics(self._logits(params, kinds, batch["inputs"]), batch["targets"])

  def _timed(self, name: str, fn, *args):
    """Calls `fn`; the first call per (function, device) compiles, and its time goes to `compile_seconds`."""
    key = (name, str(jax.config.jax_default_device))
    if key in self._compiled:
      return fn(*args)
    started = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    self.compile_seconds += time.perf_counter() - started
    self._compiled.add(key)
    return out

  def init(self, seed: int) -> tuple[Any, Any]:
    """Fresh parameters and optimizer state from `seed`, built eagerly on the default device: 0.07 s for the
    16-layer switch model of the CPU default, where a jitted init took 7 s to compile (per task)."""
    params = nnx.split(self._build(nnx.Rngs(seed)))[1]
    return params, self.optimizer.init(params)

  def step(self, params, opt_state, kinds, batch, lr: float):
    """One training step at learning rate `lr`; returns (params, opt_state, {"loss", "grad_norm"});
    params and opt_state are donated."""
    return self._timed("step", self._step, params, opt_state, kinds, batch, np.float32(lr))

  def score(self, params, kinds, inputs: np.ndarray, targets: np.ndarray, batch_size: int) -> dict[str, float]:
    """The task's metrics over the rows (inputs, targets), scored `batch_size` rows at a time (score_in_batches)."""
    return score_in_batches(lambda batch: self._timed("score", self._score, params, kinds, batch), inputs, targets,
                            batch_size)


def score_in_batches(score, inputs: np.ndarray, targets: np.ndarray, batch_size: int) -> dict[str, float]:
  """Metrics of `score(batch) -> {name: scalar}` over all rows, `batch_size` rows at a time, so a large
  validation set never becomes one huge batch of logits. The last batch is padded with rows whose targets
  are all IGNORE (one compiled shape). Batches are averaged with weights = their counted targets: exact for
  per-token means (the loss, accuracy, nats), a token-weighted mean for the rest (val_bpb weights by bytes)."""
  totals: dict[str, float] = {}
  counted_total = 0
  for start in range(0, len(inputs), batch_size):
    rows_in, rows_out = inputs[start:start + batch_size], targets[start:start + batch_size]
    counted = int(np.sum(rows_out != IGNORE))
    if counted == 0:
      continue
    missing = batch_size - len(rows_in)
    if missing:
      rows_in = np.concatenate([rows_in, np.repeat(rows_in[:1], missing, axis=0)])
      rows_out = np.concatenate([rows_out, np.full((missing,) + rows_out.shape[1:], IGNORE, rows_out.dtype)])
    for name, value in score({"inputs": rows_in, "targets": rows_out}).items():
      totals[name] = totals.get(name, 0.0) + float(value) * counted
    counted_total += counted
  return {name: total / max(counted_total, 1) for name, total in totals.items()}


def sample_batches(split, batch_size: int, steps: int, seed: int):
  """`steps` batches of `batch_size` rows drawn with a seeded permutation of the split (wrapping around)."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(split))
  needed = batch_size * steps
  while len(order) < needed:
    order = np.concatenate([order, rng.permutation(len(split))])
  for i in range(steps):
    rows = order[i * batch_size:(i + 1) * batch_size]
    yield {"inputs": split.inputs[rows], "targets": split.targets[rows]}


def cosine_lr(step: int, total_steps: int, peak: float, *, warmup_fraction: float = 0.1, floor: float = 0.1) -> float:
  """Learning rate of 0-based `step`: linear warmup over the first `warmup_fraction` of the steps, then cosine
  decay from `peak` to `floor * peak` at the last step."""
  warmup = max(int(warmup_fraction * total_steps), 1)
  if step < warmup:
    return peak * (step + 1) / warmup
  progress = (step - warmup) / (total_steps - 1 - warmup) if total_steps - 1 > warmup else 1.0
  return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))
