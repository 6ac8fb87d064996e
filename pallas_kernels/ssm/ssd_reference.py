"""Plain-jnp Mamba-2 SSD (state-space duality) scan: the CPU path and the oracle for the Pallas kernels.

The sequence is cut into chunks of `chunk_size` steps. Inside a chunk the output is a masked quadratic form
(like attention, with a decay matrix built from segment sums of the log-decays `dt * A`); across chunks a short
`lax.scan` carries the (head_dim, d_state) state; the carried state then reaches every position of the next
chunk through `C`. All math is float32; padding steps have dt = 0, so they neither decay nor add to the state.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def check_ssd_args(x, dt, A, B, C, D, initial_state, chunk_size):
  """Validates SSD argument shapes; returns (batch, seq, heads, head_dim, groups, d_state). Raises ValueError."""
  if x.ndim != 4:
    raise ValueError(f"x must be (batch, seq, heads, head_dim); got shape {x.shape}")
  b, l, h, p = x.shape
  if dt.shape != (b, l, h):
    raise ValueError(f"dt must be (batch, seq, heads) = {(b, l, h)}; got {dt.shape}")
  if A.shape != (h,):
    raise ValueError(f"A must be (heads,) = {(h,)} (one scalar decay per head); got {A.shape}")
  if B.ndim != 4 or B.shape[:2] != (b, l):
    raise ValueError(f"B must be (batch, seq, groups, d_state) with batch, seq = {(b, l)}; got {B.shape}")
  if C.shape != B.shape:
    raise ValueError(f"C must have the same shape as B {B.shape}; got {C.shape}")
  g, n = B.shape[2:]
  if g < 1 or h % g:
    raise ValueError(f"groups ({g}) must divide heads ({h}); change the group dimension of B and C")
  if D is not None and D.shape != (h,):
    raise ValueError(f"D must be (heads,) = {(h,)}; got {D.shape}")
  if initial_state is not None and initial_state.shape != (b, h, p, n):
    raise ValueError(f"initial_state must be (batch, heads, head_dim, d_state) = {(b, h, p, n)}; "
                     f"got {initial_state.shape}")
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be a positive integer; got {chunk_size}")
  return b, l, h, p, g, n


def _segsum_decay(a_cum):
  """exp(a_cum[i] - a_cum[j]) for i >= j, else 0. a_cum: (..., Q) -> (..., Q, Q), float32."""
  q = a_cum.shape[-1]
  diff = a_cum[..., :, None] - a_cum[..., None, :]
  mask = jnp.tril(jnp.ones((q, q), dtype=bool))
  return jnp.exp(jnp.where(mask, diff, -jnp.inf))


def ssd_reference(x, dt, A, B, C, *, D=None, initial_state=None, chunk_size=64, return_final_state=False):
  """Mamba-2 SSD scan with a scalar decay per head, in plain jnp (chunked; float32 math).

  Recurrence per head: h_t = exp(dt_t * A) * h_{t-1} + dt_t * outer(x_t, B_t);  y_t = h_t @ C_t + D * x_t.

  Args:
    x: (batch, seq, heads, head_dim), any float dtype.
    dt: (batch, seq, heads), positive step sizes (softplus and bias already applied).
    A: (heads,), negative reals.
    B, C: (batch, seq, groups, d_state); head h uses group h // (heads // groups).
    D: optional (heads,) skip connection.
    initial_state: optional (batch, heads, head_dim, d_state) state before step 0.
    chunk_size: chunk length Q (the chunk used is min(chunk_size, seq)); any seq works (padded with dt = 0).
    return_final_state: also return h_L.

  Returns:
    y: (batch, seq, heads, head_dim) in x.dtype; with return_final_state, (y, final_state) where
    final_state is (batch, heads, head_dim, d_state) float32.
  """
  b, l, h, p, g, n = check_ssd_args(x, dt, A, B, C, D, initial_state, chunk_size)
  r = h // g
  q = max(1, min(int(chunk_size), l))
  nc = -(-l // q)
  pad = nc * q - l
  f32 = jnp.float32

  def chunked(t):  # (b, l, ...) -> (b, nc, q, ...), zero-padded
    t = t.astype(f32)
    if pad:
      t = jnp.pad(t, [(0, 0), (0, pad)] + [(0, 0)] * (t.ndim - 2))
    return t.reshape((b, nc, q) + t.shape[2:])

  xc = chunked(x).reshape(b, nc, q, g, r, p)
  dtc = chunked(dt).reshape(b, nc, q, g, r)
  bc = chunked(B)  # (b, nc, q, g, n)
  cc = chunked(C)
  a = dtc * A.astype(f32).reshape(1, 1, 1, g, r)
  a_cum = jnp.cumsum(a, axis=2)  # (b, nc, q, g, r)
  a_cum_t = jnp.moveaxis(a_cum, 2, -1)  # (b, nc, g, r, q)

  # Intra-chunk (diagonal blocks): y[i] = sum_{j<=i} (C_i . B_j) exp(a_cum_i - a_cum_j) dt_j x_j.
  decay = _segsum_decay(a_cum_t)  # (b, nc, g, r, q, q)
  cb = jnp.einsum("bcign,bcjgn->bcgij", cc, bc)
  xdt = xc * dtc[..., None]  # (b, nc, q, g, r, p)
  y = jnp.einsum("bcgij,bcgrij,bcjgrp->bcigrp", cb, decay, xdt)

  # Each chunk's own contribution to the state at its end.
  decay_to_end = jnp.exp(a_cum[:, :, -1:] - a_cum)  # (b, nc, q, g, r)
  chunk_states = jnp.einsum("bcjgn,bcjgr,bcjgrp->bcgrpn", bc, decay_to_end, xdt)
  chunk_decay = jnp.exp(a_cum[:, :, -1])  # (b, nc, g, r)

  # Inter-chunk recurrence over chunks: state entering chunk c.
  if initial_state is None:
    h0 = jnp.zeros((b, g, r, p, n), f32)
  else:
    h0 = initial_state.astype(f32).reshape(b, g, r, p, n)

  def step(carry, inp):
    s_c, d_c = inp
    return d_c[..., None, None] * carry + s_c, carry

  final, states_in = lax.scan(step, h0, (jnp.moveaxis(chunk_states, 1, 0), jnp.moveaxis(chunk_decay, 1, 0)))
  states_in = jnp.moveaxis(states_in, 0, 1)  # (b, nc, g, r, p, n)

  # State-to-output: y[i] += exp(a_cum_i) * (state_in @ C_i).
  y = y + jnp.einsum("bcign,bcgrpn,bcigr->bcigrp", cc, states_in, jnp.exp(a_cum))
  if D is not None:
    y = y + xc * D.astype(f32).reshape(1, 1, 1, g, r, 1)
  y = y.reshape(b, nc * q, h, p)[:, :l].astype(x.dtype)
  if return_final_state:
    return y, final.reshape(b, h, p, n)
  return y
