# seed: ssm
"""A bidirectional selective state-space mixer (Mamba-2's SSD scan, as in Hydra): one scan left to right,
one right to left on the reversed sequence, summed, plus a skip term and a SiLU gate.

Each direction: h_t = exp(dt_t a) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t (scalar decay a < 0 per head), run
by `pallas_kernels.ssd` (impl "auto": the chunked XLA reference on CPU and, for float32 inputs, on GPU; a Pallas
kernel on TPU and for bfloat16 on GPU). Padded positions get dt = 0 and x = 0, so they neither decay nor feed the
state. Interface (fixed by the harness):
`Mixer(d_model, num_heads, *, rngs)`; `mixer(x, mask)` maps x (batch, seq, d_model) float32 and mask
(batch, seq) bool (True = real token) to (batch, seq, d_model).
"""

import jax
import jax.numpy as jnp
from flax import nnx

import pallas_kernels

# --- CONFIG (knobs: `NAME = value  # knob: allowed values`, see aira_jax/design/knobs.py) ---
# STATE_DIM: d_state of B and C. DIRECTIONS: 2 = bidirectional, 1 = left to right only. CHUNK: SSD chunk.
STATE_DIM = 16  # knob: 4, 8, 16, 32, 64
DIRECTIONS = 2  # knob: 1, 2
CHUNK = 32  # knob: 16, 32, 64
# --- END CONFIG ---

HYPERPARAMETERS = {}  # honoured only in the "configurable" setting; keys and ranges: see the task description


class Mixer(nnx.Module):
  """Bidirectional SSD mixer with num_heads heads of width d_model // num_heads."""

  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    std = d_model ** -0.5
    normal = lambda shape, s: nnx.Param(s * jax.random.normal(rngs.params(), shape))
    self.w_xz = normal((d_model, 2, d_model), std)
    self.w_bc = normal((d_model, DIRECTIONS, 2, STATE_DIM), std)
    self.w_dt = normal((d_model, DIRECTIONS, num_heads), std)
    dt = jnp.exp(jax.random.uniform(rngs.params(), (DIRECTIONS, num_heads), jnp.float32,
                                    jnp.log(1e-3), jnp.log(1e-1)))
    self.dt_bias = nnx.Param(dt + jnp.log(-jnp.expm1(-dt)))  # softplus(dt_bias) = dt
    self.a_log = nnx.Param(jnp.log(jax.random.uniform(rngs.params(), (DIRECTIONS, num_heads), jnp.float32,
                                                      1.0, 16.0)))
    self.d_skip = nnx.Param(jnp.ones((num_heads,), jnp.float32))
    self.w_out = normal((d_model, d_model), std)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    batch, seq, d_model = x.shape
    keep = mask.astype(jnp.float32)
    xz = jnp.einsum("bsd,dte->tbse", x, self.w_xz[...])
    u = (xz[0] * keep[:, :, None]).reshape(batch, seq, self.num_heads, self.head_dim)
    bc = jnp.einsum("bsd,dgtn->gtbsn", x, self.w_bc[...])
    dt = jax.nn.softplus(jnp.einsum("bsd,dgh->gbsh", x, self.w_dt[...]) + self.dt_bias[...][:, None, None, :])
    dt = dt * keep[None, :, :, None]
    y = u * self.d_skip[...][None, None, :, None]
    for g in range(DIRECTIONS):
      flip = (lambda t: t) if g == 0 else (lambda t: jnp.flip(t, axis=1))
      y_g = pallas_kernels.ssd(flip(u), flip(dt[g]), -jnp.exp(self.a_log[...][g]), flip(bc[g, 0])[:, :, None, :],
                               flip(bc[g, 1])[:, :, None, :], chunk_size=CHUNK)
      y = y + flip(y_g)
    y = y.reshape(batch, seq, d_model) * jax.nn.silu(xz[1])
    return jnp.einsum("bse,ed->bsd", y, self.w_out[...])
