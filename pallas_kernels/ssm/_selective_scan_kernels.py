"""Pallas kernel bodies for the Mamba-1 selective scan: forward sweep and backward (reverse) sweep.

One program handles one (batch, block of `bd` channels). The state is kept as (N, bd) float32: d_state on the
rows, channels on the columns, so per-step rows of u / delta (1, bd) broadcast over it and B_t / C_t become
(N, 1) columns (a tiny transpose of the loaded (1, N) row). A `fori_loop` walks chunks of `t` steps and the
steps inside a chunk are unrolled. The forward pass saves the state entering every chunk; the backward pass
walks the chunks in reverse, recomputes the chunk's states from the saved one, then runs the steps backwards.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl


def _load_step(s, u_ref, dl_ref, b_ref, c_ref):
  u = u_ref[pl.ds(s, 1), :].astype(jnp.float32)  # (1, bd)
  dl = dl_ref[pl.ds(s, 1), :]  # (1, bd) float32
  b = jnp.transpose(b_ref[pl.ds(s, 1), :])  # (N, 1)
  c = jnp.transpose(c_ref[pl.ds(s, 1), :])
  return u, dl, b, c


def selective_scan_fwd_kernel(u_ref, dl_ref, at_ref, b_ref, c_ref, h0_ref, y_ref, ht_ref, states_ref, *, t):
  """Forward sweep. u, delta, y: (Lp, bd); A^T: (N, bd); B, C: (Lp, N); state (N, bd); states (nc, N, bd)."""
  nc = states_ref.shape[0]
  at = at_ref[...]

  def body(c, h):
    states_ref[c] = h
    for k in range(t):
      s = c * t + k
      u, dl, b, cc = _load_step(s, u_ref, dl_ref, b_ref, c_ref)
      h = jnp.exp(dl * at) * h + b * (dl * u)
      y_ref[pl.ds(s, 1), :] = jnp.sum(h * cc, axis=0, keepdims=True)
    return h

  ht_ref[...] = lax.fori_loop(0, nc, body, h0_ref[...])


def selective_scan_bwd_kernel(u_ref, dl_ref, at_ref, b_ref, c_ref, states_ref, dy_ref, dht_ref,
                              du_ref, ddl_ref, dat_ref, db_ref, dc_ref, dh0_ref, *, t):
  """Reverse sweep. Writes du, d delta (Lp, bd), d A^T (N, bd), this block's partial dB and dC (Lp, N) (summed
  over channel blocks by the caller) and the initial-state cotangent (N, bd)."""
  nc = states_ref.shape[0]
  at = at_ref[...]

  def body(i, carry):
    dh, dat = carry
    c = nc - 1 - i
    h = states_ref[c]
    steps = []
    for k in range(t):  # recompute the chunk's states forwards
      s = c * t + k
      u, dl, b, cc = _load_step(s, u_ref, dl_ref, b_ref, c_ref)
      decay = jnp.exp(dl * at)
      steps.append((s, u, dl, b, cc, decay, h))
      h = decay * h + b * (dl * u)
    for s, u, dl, b, cc, decay, h_prev in reversed(steps):
      h_cur = decay * h_prev + b * (dl * u)
      dy = dy_ref[pl.ds(s, 1), :]
      g = dh + cc * dy  # cotangent of h_s
      dc_ref[pl.ds(s, 1), :] = jnp.transpose(jnp.sum(h_cur * dy, axis=1, keepdims=True))
      dlog = g * h_prev * decay  # cotangent of the exponent dl * A
      gb = jnp.sum(g * b, axis=0, keepdims=True)  # (1, bd): cotangent of dl * u
      ddl_ref[pl.ds(s, 1), :] = jnp.sum(dlog * at, axis=0, keepdims=True) + gb * u
      du_ref[pl.ds(s, 1), :] = gb * dl
      db_ref[pl.ds(s, 1), :] = jnp.transpose(jnp.sum(g * (dl * u), axis=1, keepdims=True))
      dat = dat + dlog * dl
      dh = g * decay
    return dh, dat

  dh, dat = lax.fori_loop(0, nc, body, (dht_ref[...], jnp.zeros(at.shape, jnp.float32)))
  dh0_ref[...] = dh
  dat_ref[...] = dat
