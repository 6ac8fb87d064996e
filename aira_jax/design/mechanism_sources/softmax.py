# seed: softmax
"""Softmax attention (the seed mechanism): bidirectional multi-head scaled dot-product attention, plain jnp.

Padded keys are masked out of every softmax. Interface (fixed by the harness): `Mixer(d_model, num_heads, *,
rngs)`; `mixer(x, mask)` maps x (batch, seq, d_model) float32 and mask (batch, seq) bool (True = real token)
to (batch, seq, d_model).
"""

import jax
import jax.numpy as jnp
from flax import nnx

# --- CONFIG (knobs: `NAME = value  # knob: allowed values`, see aira_jax/design/knobs.py) ---
# QK_NORM: L2-normalise queries and keys per head (with a learned temperature).
QK_NORM = False  # knob: False, True
# --- END CONFIG ---

HYPERPARAMETERS = {}  # honoured only in the "configurable" setting; keys and ranges: see the task description


class Mixer(nnx.Module):
  """Multi-head softmax attention over all real tokens."""

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    std = d_model ** -0.5
    self.w_qkv = nnx.Param(std * jax.random.normal(rngs.params(), (d_model, 3, num_heads, self.head_dim)))
    self.w_out = nnx.Param(std * jax.random.normal(rngs.params(), (num_heads, self.head_dim, d_model)))
    self.log_temperature = nnx.Param(jnp.full((num_heads,), jnp.log(self.head_dim ** 0.5), jnp.float32))

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    q, k, v = jnp.einsum("bsd,dthk->tbshk", x, self.w_qkv[...])
    if QK_NORM:
      q = q * jax.lax.rsqrt(jnp.sum(q * q, axis=-1, keepdims=True) + 1e-6)
      k = k * jax.lax.rsqrt(jnp.sum(k * k, axis=-1, keepdims=True) + 1e-6)
      scale = jnp.exp(self.log_temperature[...])[None, :, None, None]
    else:
      scale = jnp.full((1, 1, 1, 1), self.head_dim ** -0.5, jnp.float32)
    scores = jnp.einsum("bqhk,bshk->bhqs", q, k) * scale
    scores = jnp.where(mask[:, None, None, :], scores, -1e30)
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqs,bshk->bqhk", weights, v)
    return jnp.einsum("bqhk,hkd->bqd", out, self.w_out[...])
