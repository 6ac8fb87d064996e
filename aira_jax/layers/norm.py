"""RMSNorm and the gated RMSNorm of Mamba-2. Statistics are computed in float32 whatever the input dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from aira_jax.layers.params import along_last, param


def rms_normalize(x: jax.Array, eps: float) -> jax.Array:
  """x / sqrt(mean(x^2) + eps) over the last axis, in float32."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class RMSNorm(nnx.Module):
  """RMSNorm over the last axis with a learned per-feature scale initialised to ones.

  Input (..., dim) of any float dtype; output has the input's dtype.
  """

  def __init__(self, dim: int, *, eps: float = 1e-5, axis_name: str | None = "embed", param_dtype=jnp.float32):
    self.eps = eps
    self.scale = param(jnp.ones((dim,), param_dtype), (axis_name,))

  def __call__(self, x: jax.Array) -> jax.Array:
    return (rms_normalize(x, self.eps) * along_last(self.scale[...].astype(jnp.float32), x.ndim)).astype(x.dtype)


class GatedRMSNorm(nnx.Module):
  """Mamba-2's output norm: RMSNorm(y * silu(z)) * scale (the gate is applied before normalising)."""

  def __init__(self, dim: int, *, eps: float = 1e-5, axis_name: str | None = "ssm_inner", param_dtype=jnp.float32):
    self.eps = eps
    self.scale = param(jnp.ones((dim,), param_dtype), (axis_name,))

  def __call__(self, y: jax.Array, z: jax.Array) -> jax.Array:
    gated = y.astype(jnp.float32) * jax.nn.silu(z.astype(jnp.float32))
    scale = along_last(self.scale[...].astype(jnp.float32), y.ndim)
    return (rms_normalize(gated, self.eps) * scale).astype(y.dtype)
