"""Creating parameters with logical sharding names, and the initialisers the layers use.

Every parameter carries the names of its logical axes ("embed", "heads", "mlp", ...) as metadata; the rules
table in `aira_jax.sharding` maps them to mesh axes. Values are created unsharded (no mesh is needed to build a
model); the trainer places them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

LogicalAxes = tuple[str | None, ...]


def param(value: jax.Array, axes: LogicalAxes) -> nnx.Param:
  """Wraps `value` as a trainable parameter annotated with logical axis names (one per dimension)."""
  if len(axes) != value.ndim:
    raise ValueError(f"{len(axes)} axis names {axes} for a parameter of shape {value.shape}")
  # flax >= 0.12 shards eagerly when a variable carries a sharding annotation; we place parameters later.
  return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float, dtype) -> jax.Array:
  """Normal(0, std) values of `shape` and `dtype` (GPT-2 / Llama practice for projections and embeddings)."""
  return std * jax.random.normal(rngs.params(), shape, dtype=dtype)


def uniform(rngs: nnx.Rngs, shape: tuple[int, ...], low: float, high: float, dtype) -> jax.Array:
  return jax.random.uniform(rngs.params(), shape, dtype=dtype, minval=low, maxval=high)


def output_std(init_std: float, depth: int) -> float:
  """Std of projections that write into the residual stream: init_std / sqrt(2 * depth) (GPT-2 scaled init),
  so the residual's variance does not grow with depth."""
  return init_std / math.sqrt(2 * max(depth, 1))


def along_last(vector: jax.Array, ndim: int) -> jax.Array:
  """Reshapes a (features,) vector to broadcast over the last axis of an `ndim`-dimensional array (explicitly:
  the tests run with implicit rank promotion disabled)."""
  return vector.reshape((1,) * (ndim - 1) + vector.shape)


def project(x: jax.Array, kernel: jax.Array, spec: str) -> jax.Array:
  """einsum(spec, x, kernel) computed in x's dtype (the parameter is cast to it).

  Leading axes that pass through unchanged (the "bs" of "bsd,df->bsf") are flattened into one before the
  product: XLA:CPU runs the gradient of the 3-D form (weight gradient "bsd,bsf->df") slower than the 2-D one
  ("zd,zf->df"; experiments/bench/RESULTS.md, "Train step on CPU", attempt 1).
  """
  inputs, out = spec.split("->")
  x_axes, k_axes = inputs.split(",")
  lead = 0
  while lead < min(len(x_axes), len(out)) and x_axes[lead] == out[lead] and x_axes[lead] not in k_axes:
    lead += 1
  kernel = kernel.astype(x.dtype)
  if lead < 2:
    return jnp.einsum(spec, x, kernel)
  flat = x.reshape((-1,) + x.shape[lead:])
  y = jnp.einsum(f"z{x_axes[lead:]},{k_axes}->z{out[lead:]}", flat, kernel)
  return y.reshape(x.shape[:lead] + y.shape[1:])
