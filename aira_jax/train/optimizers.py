"""Optimizers and learning-rate schedules for the trainer: AdamW, and Muon for hidden matrices.

`make_optimizer(config, params)` returns one `optax.GradientTransformation`: clipping by global norm, then
either AdamW on every parameter or Muon (`optax.contrib.scale_by_muon`, Newton-Schulz orthogonalised
momentum) on the hidden matrices with AdamW on the rest, via `optax.multi_transform`.

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
  schedule: "warmup_cosine" (linear warmup, cosine to min_lr_ratio * lr at total_steps), "linear" (warmup,
    then linear to min_lr_ratio * lr), "constant_then_decay" (WSD: warmup, constant, then linear to
    min_lr_ratio * lr over the last decay_fraction of total_steps), "constant" (warmup, then constant).
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
    if not 0.0 <= self.decay_fraction <= 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
      raise ValueError(f"decay_fraction and min_lr_ratio must lie in [0, 1], got {self.decay_fraction}, "
                       f"{self.min_lr_ratio}")


def lr_multiplier(config: OptimizerConfig):
  """step (int32 scalar) -> float32 factor in [0, 1] that scales the peak learning rates."""
  warmup, total, floor = config.warmup_steps, config.total_steps, config.min_lr_ratio
  decay_start = warmup if config.schedule != "constant_then_decay" else max(
      warmup, total - int(round(config.decay_fraction * total)))

  def multiplier(step):
    step = jnp.asarray(step, jnp.float32)
    warm = jnp.minimum(1.0, step / warmup) if warmup > 0 else jnp.float32(1.0)
    progress = jnp.clip((step - decay_start) / max(total - decay_start, 1), 0.0, 1.0)
    if config.schedule == "warmup_cosine":
      after = floor + (1.0 - floor) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
    elif config.schedule in ("linear", "constant_then_decay"):
      after = 1.0 - (1.0 - floor) * progress
    else:
      after = jnp.float32(1.0)
    return jnp.where(step < warmup, warm, after).astype(jnp.float32)

  return multiplier


def lr_schedule(config: OptimizerConfig, peak: float | None = None) -> optax.Schedule:
  """The learning rate at each step: `peak` (default `config.lr`) times `lr_multiplier(config)`."""
  peak = config.lr if peak is None else peak
  multiplier = lr_multiplier(config)
  return lambda step: peak * multiplier(step)


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


def weight_decay_mask(params, decay_embeddings: bool = True):
  """A pytree of bools like `params`: True where weight decay applies (ndim >= 2; embeddings optional)."""
  def decays(path, x):
    return len(x.shape) >= 2 and (decay_embeddings or not _is_embedding(_names(path)))

  return jax.tree_util.tree_map_with_path(decays, params)


def muon_labels(params):
  """A pytree of "muon" / "adamw" labels like `params` (see the module docstring for the rule)."""
  def label(path, x):
    names = _names(path)
    is_conv = any(name.startswith("conv") for name in names)
    return "muon" if len(x.shape) >= 2 and not _is_embedding(names) and not is_conv else "adamw"

  return jax.tree_util.tree_map_with_path(label, params)


def _matrix_dims(spec, ndim: int) -> MuonDimensionNumbers:
  """Reduction (input) and output axes of a weight as used in its matmul, from its logical axis names."""
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


def _adamw(config: OptimizerConfig) -> optax.GradientTransformation:
  return optax.adamw(lr_schedule(config), b1=config.b1, b2=config.b2, eps=config.eps,
                     weight_decay=config.weight_decay,
                     mask=lambda tree: weight_decay_mask(tree, config.decay_embeddings))


def _muon(config: OptimizerConfig) -> optax.GradientTransformation:
  """Muon: orthogonalised Nesterov momentum, decoupled weight decay, then minus the scheduled muon_lr."""
  return optax.chain(
      scale_by_muon(beta=config.muon_beta, weight_dimension_numbers=muon_dimension_numbers),
      optax.add_decayed_weights(config.weight_decay),
      optax.scale_by_learning_rate(lr_schedule(config, config.muon_lr)),
  )


def make_optimizer(config: OptimizerConfig, params) -> optax.GradientTransformation:
  """The optax transformation for `config`. `params` (an `nnx.State` or any pytree of arrays, or of
  ShapeDtypeStructs) gives the structure the masks and labels are built for."""
  if config.name == "adamw":
    inner = _adamw(config)
  else:
    labels = muon_labels(params)
    inner = optax.multi_transform({"muon": _muon(config), "adamw": _adamw(config)}, labels)
  if config.clip_norm is None:
    return inner
  return optax.chain(optax.clip_by_global_norm(config.clip_norm), inner)
