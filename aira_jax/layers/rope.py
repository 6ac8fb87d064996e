"""Rotary position embeddings (RoPE), rotate-half convention as in Llama / GPT-NeoX."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


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


@functools.lru_cache(maxsize=32)
def default_rope_angles(seq_len: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
  """`rope_angles` of positions 0..seq_len-1 as (1, seq_len, head_dim // 2) float32 host arrays: constants in a
  traced program, so a step without explicit positions computes no sin / cos (computed in float64, rounded)."""
  inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  angles = np.arange(seq_len, dtype=np.float64)[None, :, None] * inv_freq[None, None, :]
  return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates x (batch, seq, heads, head_dim) by angles (batch or 1, seq, head_dim // 2); keeps x's dtype."""
  half = x.shape[-1] // 2
  x1 = x[..., :half].astype(jnp.float32)
  x2 = x[..., half:].astype(jnp.float32)
  cos = cos[:, :, None, :]
  sin = sin[:, :, None, :]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)
