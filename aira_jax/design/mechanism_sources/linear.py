# seed: linear
"""Linear attention (Katharopoulos et al. 2020): phi(q) (sum_s phi(k_s) v_s^T) / (phi(q) . sum_s phi(k_s)).

Bidirectional and O(seq) in time and memory: the key-value summary is summed over all real tokens (padded
keys get phi = 0). Interface (fixed by the harness): `Mixer(d_model, num_heads, *, rngs)`; `mixer(x, mask)`
maps x (batch, seq, d_model) float32 and mask (batch, seq) bool (True = real token) to (batch, seq, d_model).
"""

import jax
import jax.numpy as jnp
from flax import nnx

# --- CONFIG (knobs: `NAME = value  # knob: allowed values`, see aira_jax/design/knobs.py) ---
# FEATURE_MAP: the positive feature map phi: "elu" (elu(x) + 1), "relu" or "softplus".
FEATURE_MAP = "elu"  # knob: "elu", "relu", "softplus"
# --- END CONFIG ---

HYPERPARAMETERS = {}  # honoured only in the "configurable" setting; keys and ranges: see the task description


def feature_map(x: jax.Array) -> jax.Array:
  """A positive feature map phi, elementwise."""
  if FEATURE_MAP == "elu":
    return jax.nn.elu(x) + 1.0
  if FEATURE_MAP == "relu":
    return jax.nn.relu(x)
  return jax.nn.softplus(x)


class Mixer(nnx.Module):
  """Multi-head linear attention."""

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    std = d_model ** -0.5
    self.w_qkv = nnx.Param(std * jax.random.normal(rngs.params(), (d_model, 3, num_heads, self.head_dim)))
    self.w_out = nnx.Param(std * jax.random.normal(rngs.params(), (num_heads, self.head_dim, d_model)))

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    q, k, v = jnp.einsum("bsd,dthk->tbshk", x, self.w_qkv[...])
    keep = mask.astype(jnp.float32)[:, :, None, None]
    q, k = feature_map(q), feature_map(k) * keep
    summary = jnp.einsum("bshk,bshv->bhkv", k, v)
    normaliser = jnp.einsum("bqhk,bhk->bqh", q, jnp.sum(k, axis=1))
    out = jnp.einsum("bqhk,bhkv->bqhv", q, summary) / (normaliser[:, :, :, None] + 1e-6)
    return jnp.einsum("bqhk,hkd->bqd", out, self.w_out[...])
