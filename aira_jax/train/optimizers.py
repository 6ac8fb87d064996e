"""Optimizers and learning-rate schedules for the trainer: AdamW, and Muon for hidden matrices.

`make_optimizer(config, params)` returns one `optax.GradientTransformation`: clipping by global norm, then
either AdamW on every parameter or Muon (`optax.contrib.scale_by_muon`, Newton-Schulz orthogonalised
momentum) on the hidden matrices with AdamW on the rest, via `optax.multi_transform`.

The schedule is a traced hyperparameter: the transformation is wrapped in `optax.inject_hyperparams` with one
hyperparameter `lr_scale` (a float32 scalar in the optimizer state) that multiplies every peak learning rate.
The training loop evaluates `lr_multiplier(config, total_steps)` on the host and passes it into the step
(`aira_jax.train.step.train_step`), so one compiled step serves runs of any length and any schedule; the
run's length is an argument of the schedule, not of the compiled program.

Weight decay (decoupled, times the scheduled learning rate) applies to parameters with two or more dimensions:
projection matrices, the embedding / output head (when `decay_embeddings`, the GPT-2 / nanoGPT convention)
and the Mamba depthwise-conv kernels. Norm scales, biases and other 1-D parameters (A_log, D, dt bias) are not
decayed.

Muon takes every parameter with two or more dimensions except the embedding, the untied output head and the
depthwise-conv kernels (not matrices of a matrix-vector product). A 3-D attention weight is orthogonalised as
the matrix it is in the matmul: (d_model, heads, head_dim) as (d_model, heads * head_dim), and the output
projection (heads, head_dim, d_model) as (heads * head_dim, d_model) - read from its logical axis names
("embed" marks the d_model side). The learning rate of the Muon group is `muon_lr`, scaled by the same
schedule as `lr`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from optax.contrib import MuonDimensionNumbers, scale_by_muon

OptimizerName = Literal["adamw", "muon"]
ScheduleName = Literal["warmup_cosine", "linear", "constant_then_decay", "constant"]
SCHEDULES = ("warmup_cosine", "linear", "constant_then_decay", "constant")
EMBEDDING_NAMES = ("embed", "head")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizer and schedule hyper-parameters.

  name: "adamw", or "muon" (Muon on hidden matrices, AdamW on the rest).
  lr: peak learning rate of AdamW; muon_lr: peak learning rate of the Muon group; muon_beta: its momentum.
  weight_decay, b1, b2, eps: AdamW's (decay is decoupled and masked, see the module docstring).
  clip_norm: clip gradients to this global L2 norm (None = off).
  schedule: "warmup_cosine" (linear warmup, cosine to min_lr_ratio * lr at the last step), "linear" (warmup,
    then linear to min_lr_ratio * lr), "constant_then_decay" (WSD: warmup, constant, then linear to
    min_lr_ratio * lr over the last decay_fraction of the steps), "constant" (warmup, then constant).
  warmup_steps: warmup length; or warmup_fraction (when set, it wins): that fraction of the run's steps, at
    least 1. total_steps: the run length the schedule assumes unless the loop passes another.
  Step s (0-based) of the warmup trains at (s + 1) / warmup of the peak, so the first update is not wasted.
  """

  name: OptimizerName = "adamw"
  lr: float = 3e-4
  weight_decay: float = 0.1
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  clip_norm: float | None = 1.0
  schedule: ScheduleName = "warmup_cosine"
  warmup_steps: int = 0
  warmup_fraction: float | None = None
  total_steps: int = 1000
  decay_fraction: float = 0.2
  min_lr_ratio: float = 0.1
  decay_embeddings: bool = True
  muon_lr: float = 0.02
  muon_beta: float = 0.95

  def __post_init__(self):
    if self.name not in ("adamw", "muon"):
      raise ValueError(f"optimizer name must be 'adamw' or 'muon', got {self.name!r}")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
    if self.total_steps < 1 or not 0 <= self.warmup_steps <= self.total_steps:
      raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got "
                       f"warmup_steps={self.warmup_steps}, total_steps={self.total_steps}")
    if self.warmup_fraction is not None and not 0.0 <= self.warmup_fraction < 1.0:
      raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction}")
    if not 0.0 <= self.decay_fraction <= 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
      raise ValueError(f"decay_fraction and min_lr_ratio must lie in [0, 1], got {self.decay_fraction}, "
                       f"{self.min_lr_ratio}")


def warmup_length(config: OptimizerConfig, total_steps: int) -> int:
  """Warmup steps of a run of `total_steps`: `warmup_fraction` of them (at least 1) when set, else
  `warmup_steps` (capped at the run length)."""
  if config.warmup_fraction is not None:
    return max(int(config.warmup_fraction * total_steps), 1)
  return min(config.warmup_steps, total_steps)


def lr_multiplier(config: OptimizerConfig, step: int, total_steps: int | None = None) -> float:
  """The factor in [0, 1] that scales the peak learning rates at 0-based `step` of a run of `total_steps`
  (default `config.total_steps`); computed on the host, passed into the step as the `lr_scale`
  hyperparameter. The decay reaches `min_lr_ratio` at the last step (total_steps - 1) and stays there."""
  total = config.total_steps if total_steps is None else int(total_steps)
  warmup, floor = warmup_length(config, total), config.min_lr_ratio
  if step < warmup:
    return (step + 1) / warmup
  last = total - 1
  decay_start = warmup
  if config.schedule == "constant_then_decay":
    decay_start = max(warmup, total - int(round(config.decay_fraction * total)))
  progress = min(max((step - decay_start) / (last - decay_start), 0.0), 1.0) if last > decay_start else 1.0
  if config.schedule == "warmup_cosine":
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
  if config.schedule in ("linear", "constant_then_decay"):
    return 1.0 - (1.0 - floor) * progress
  return 1.0


def lr_schedule(config: OptimizerConfig, total_steps: int | None = None, peak: float | None = None):
  """step -> the learning rate there: `peak` (default `config.lr`) times `lr_multiplier` (host-side floats)."""
  peak = config.lr if peak is None else peak
  return lambda step: peak * lr_multiplier(config, int(step), total_steps)


def set_lr_scale(opt_state, lr_scale):
  """`opt_state` with its `lr_scale` hyperparameter replaced (inside a traced step); unchanged when the
  optimizer has none (a plain optax transformation: its own schedule, if any, applies)."""
  hyperparams = getattr(opt_state, "hyperparams", None)
  if hyperparams is None or "lr_scale" not in hyperparams:
    return opt_state
  value = jnp.asarray(lr_scale, hyperparams["lr_scale"].dtype)
  return opt_state._replace(hyperparams={**hyperparams, "lr_scale": value})


def _names(path) -> list[str]:
  """The string keys along a pytree path (dict keys and attribute names; list indices dropped)."""
  names = []
  for key in path:
    name = getattr(key, "key", getattr(key, "name", None))
    if isinstance(name, str):
      names.append(name)
  return names


def _is_embedding(names: list[str]) -> bool:
  return bool(names) and names[0] in EMBEDDING_NAMES


STACK_AXIS = "layers"
"""Logical name of a leading axis that stacks one weight per layer (the compose switch model's): the weight's
own dimensions are the others, so a stacked norm scale is still a vector and a stacked matrix still a matrix."""


def _stacked(spec) -> bool:
  return bool(spec) and spec[0] == STACK_AXIS


def _own_ndim(x, spec) -> int:
  """Dimensions of one weight: its array's, less a leading stack axis."""
  return len(x.shape) - (1 if _stacked(spec) else 0)


def _with_specs(fn, params):
  """`fn(path, leaf, partition spec)` over `params` (specs from the NNX metadata; None for plain arrays). Inside
  `optax.multi_transform` the tree holds MaskedNode for the other group's parameters: those stay as they are."""
  specs = nnx.get_partition_spec(params)
  masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
  return jax.tree_util.tree_map_with_path(lambda path, x, spec: x if masked(x) else fn(path, x, spec), params,
                                          specs, is_leaf=lambda x: x is None or masked(x))


def weight_decay_mask(params, decay_embeddings: bool = True):
  """A pytree of bools like `params`: True where weight decay applies (weights with >= 2 dimensions of their
  own; embeddings optional)."""
  def decays(path, x, spec):
    return _own_ndim(x, spec) >= 2 and (decay_embeddings or not _is_embedding(_names(path)))

  return _with_specs(decays, params)


def muon_labels(params):
  """A pytree of "muon" / "adamw" labels like `params` (see the module docstring for the rule)."""
  def label(path, x, spec):
    names = _names(path)
    is_conv = any(name.startswith("conv") for name in names)
    return "muon" if _own_ndim(x, spec) >= 2 and not _is_embedding(names) and not is_conv else "adamw"

  return _with_specs(label, params)


def _matrix_dims(spec, ndim: int) -> MuonDimensionNumbers:
  """Reduction (input) and output axes of a weight as used in its matmul, from its logical axis names; a stack
  axis (`STACK_AXIS`) in front is a batch of such matrices."""
  if _stacked(spec):
    inner = _matrix_dims(tuple(spec)[1:], ndim - 1)
    shift = lambda a: tuple(i + 1 for i in a) if isinstance(a, tuple) else a + 1  # noqa: E731
    return MuonDimensionNumbers(reduction_axis=shift(inner.reduction_axis), output_axis=shift(inner.output_axis))
  axes = tuple(range(ndim))
  names = tuple(spec or ()) + (None,) * ndim
  if ndim > 2 and names[ndim - 1] == "embed" and names[0] != "embed":
    return MuonDimensionNumbers(reduction_axis=axes[:-1], output_axis=axes[-1])
  return MuonDimensionNumbers(reduction_axis=0, output_axis=axes[1:] if ndim > 2 else 1)


def muon_dimension_numbers(params):
  """A pytree of `MuonDimensionNumbers` like `params`: how each (masked-in) weight is seen as a matrix."""
  def dims(x, spec):
    return x if isinstance(x, optax.MaskedNode) else _matrix_dims(spec, len(x.shape))

  # Inside multi_transform the tree holds MaskedNode for the other group's parameters; keep those as they are.
  is_masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
  return jax.tree.map(dims, params, nnx.get_partition_spec(params), is_leaf=is_masked)


def _adamw(config: OptimizerConfig, lr_scale) -> optax.GradientTransformation:
  if config.weight_decay == 0:  # Adam: no pass over the parameters for a decay of zero
    return optax.adam(config.lr * lr_scale, b1=config.b1, b2=config.b2, eps=config.eps)
  return optax.adamw(config.lr * lr_scale, b1=config.b1, b2=config.b2, eps=config.eps,
                     weight_decay=config.weight_decay,
                     mask=lambda tree: weight_decay_mask(tree, config.decay_embeddings))


def _muon(config: OptimizerConfig, lr_scale) -> optax.GradientTransformation:
  """Muon: orthogonalised Nesterov momentum, decoupled weight decay, then minus the scheduled muon_lr."""
  return optax.chain(
      scale_by_muon(beta=config.muon_beta, weight_dimension_numbers=muon_dimension_numbers),
      optax.add_decayed_weights(config.weight_decay),
      optax.scale_by_learning_rate(config.muon_lr * lr_scale),
  )


def make_optimizer(config: OptimizerConfig, params) -> optax.GradientTransformation:
  """The optax transformation for `config`, its learning rates scaled by the traced `lr_scale` hyperparameter
  (module docstring). `params` (an `nnx.State` or any pytree of arrays, or of ShapeDtypeStructs) gives the
  structure the masks and labels are built for."""
  labels = muon_labels(params) if config.name == "muon" else None

  def build(lr_scale):
    if config.name == "adamw":
      inner = _adamw(config, lr_scale)
    else:
      inner = optax.multi_transform({"muon": _muon(config, lr_scale), "adamw": _adamw(config, lr_scale)}, labels)
    if config.clip_norm is None:
      return inner
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), inner)

  return optax.inject_hyperparams(build)(lr_scale=1.0)
