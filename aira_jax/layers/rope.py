"""Rotary position embeddings (RoPE), rotate-half convention as in Llama / GPT-NeoX."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rope_angles(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
  """cos and sin of the rotation angles.

  Args:
    positions: (batch, seq) or (seq,) integer positions.
  Returns:
    cos, sin of shape positions.shape + (head_dim // 2,), float32.
  """
  inv_freq = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
  angles = positions.astype(jnp.float32)[..., None] * inv_freq.reshape((1,) * positions.ndim + (-1,))
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates x (batch, seq, heads, head_dim) by angles (batch or 1, seq, head_dim // 2); keeps x's dtype."""
  half = x.shape[-1] // 2
  x1 = x[..., :half].astype(jnp.float32)
  x2 = x[..., half:].astype(jnp.float32)
  cos = cos[:, :, None, :]
  sin = sin[:, :, None, :]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)
