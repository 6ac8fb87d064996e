"""Pallas kernel bodies for the Mamba-2 SSD scan: the forward sweep over chunks and the two backward kernels.

Refs are head-major: x/y/dy (Lp, P) or a chunk's (Q, P), dt and a_cum as columns (Lp, 1), a_cum again as rows
(nc, Q) or a chunk's (1, Q), B/C (Lp, N), states (P, N). Rows of the state are independent, so a block of P
head_dim columns of x needs only its own rows of the state. Inside a chunk the work is matmuls (operands cast to
`operand_dtype`, float32 results; decay factors and sums stay float32):
  y   = (C B^T * Lmask) @ (dt x) + exp(a_cum) * (C S^T)
  S' = exp(a_last) S + (dt x exp(a_last - a_cum))^T B
where Lmask[i, j] = exp(a_cum_i - a_cum_j) for i >= j.

Forward: one program per (batch, head, head_dim block); a `fori_loop` walks the chunks carrying the (P, N)
float32 state and saves each chunk's entry state.
Backward, in two kernels:
  1. `ssd_bwd_state_kernel`, one program per (batch, head, head_dim block, d_state block): walks the chunks in
     reverse carrying only its block of the state cotangent dS (one (P, Q) x (Q, N) matmul per chunk), saving
     for every chunk the cotangent of the state leaving it; the carry left at the start is the initial
     state's cotangent.
  2. `ssd_bwd_chunk_kernel`, one program per (batch, head, chunk, head_dim block), all independent: from the
     chunk's entry state (saved by the forward) and the cotangent of its exit state (from kernel 1), the chunk's
     dx and its block's shares of d dt, d a_cum, dB and dC (these sum over head_dim; the wrapper adds the shares).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.ssm._pallas_common import dot, last_column_mask, last_of_row


def _read_chunk(rows, row, x_ref, dt_ref, acol_ref, arow_ref, b_ref, c_ref):
  """A chunk's x (float32), dt, a_cum column, a_cum row (1, Q), B and C: `rows` indexes the chunk's rows of
  the sequence refs, `row` its row of the (nc, Q) a_cum-rows ref (both `slice(None)` when the refs hold one chunk)."""
  x = x_ref[rows, :].astype(jnp.float32)
  dt = dt_ref[rows, :]
  acol = acol_ref[rows, :]
  arow = arow_ref[row, :]
  bm = b_ref[rows, :]  # input dtype: B and C only enter matmuls
  cm = c_ref[rows, :]
  return x, dt, acol, arow, bm, cm


def _decay_matrix(acol, arow):
  """(Q, 1), (1, Q) -> (Q, Q): exp(a_i - a_j) on and below the diagonal, 0 above."""
  q = acol.shape[0]
  diff = acol - arow
  causal = lax.broadcasted_iota(jnp.int32, (q, q), 0) >= lax.broadcasted_iota(jnp.int32, (q, q), 1)
  return jnp.where(causal, jnp.exp(jnp.where(causal, diff, 0.0)), 0.0)


def _matmul(precision, operand_dtype):
  return lambda a, b, ca, cb: dot(a, b, ca, cb, precision, operand_dtype)


def ssd_fwd_kernel(x_ref, dt_ref, acol_ref, arow_ref, b_ref, c_ref, h0_ref, y_ref, ht_ref, states_ref, *, q,
                   precision, operand_dtype):
  """Forward sweep. Writes y (Lp, P), the final state (P, N) and each chunk's entry state (nc, P, N).
  q: chunk length (static); precision, operand_dtype: of the matmuls (`dot_precision`, `matmul_dtype`)."""
  nc = arow_ref.shape[0]
  mm = _matmul(precision, operand_dtype)

  def body(c, state):
    s = pl.multiple_of(c * q, q)
    x, dt, acol, arow, bm, cm = _read_chunk(pl.ds(s, q), pl.ds(c, 1), x_ref, dt_ref, acol_ref, arow_ref, b_ref,
                                            c_ref)
    states_ref[c] = state
    xdt = x * dt
    m = mm(cm, bm, 1, 1) * _decay_matrix(acol, arow)  # (Q, Q)
    y = mm(m, xdt, 1, 0) + jnp.exp(acol) * mm(cm, state, 1, 1)
    y_ref[pl.ds(s, q), :] = y.astype(y_ref.dtype)
    alast = last_of_row(arow)  # (1, 1)
    to_end = jnp.exp(alast - acol)  # (Q, 1)
    return jnp.exp(alast) * state + mm(xdt * to_end, bm, 0, 0)

  ht_ref[...] = lax.fori_loop(0, nc, body, h0_ref[...].astype(jnp.float32))


def ssd_bwd_state_kernel(acol_ref, arow_ref, c_ref, dy_ref, dht_ref, dstates_ref, dh0_ref, *, q, precision,
                         operand_dtype):
  """Reverse sweep of the state cotangent over one (P, N) block of the state (its entries are independent: the
  refs hold the block's P columns of dy and N columns of C). Writes, for every chunk c, the cotangent of the
  state leaving c (nc, P, N), and the initial state's cotangent (P, N). The state entering a chunk reaches
  the state leaving it (times exp(a_last)) and y (through exp(a_cum) * C), hence
  dS_in = exp(a_last) dS_out + (dy exp(a_cum))^T C."""
  nc = arow_ref.shape[0]
  mm = _matmul(precision, operand_dtype)

  def body(i, dstate_next):  # dstate_next: cotangent of the state leaving chunk c
    c = nc - 1 - i
    s = pl.multiple_of(c * q, q)
    dstates_ref[c] = dstate_next
    dy = dy_ref[pl.ds(s, q), :].astype(jnp.float32)
    dy_e = dy * jnp.exp(acol_ref[pl.ds(s, q), :])
    alast = last_of_row(arow_ref[pl.ds(c, 1), :])
    return jnp.exp(alast) * dstate_next + mm(dy_e, c_ref[pl.ds(s, q), :], 0, 0)

  dh0_ref[...] = lax.fori_loop(0, nc, body, dht_ref[...].astype(jnp.float32))


def ssd_bwd_chunk_kernel(x_ref, dt_ref, acol_ref, arow_ref, b_ref, c_ref, state_ref, dstate_ref, dy_ref,
                         dx_ref, ddt_ref, dacol_ref, darow_ref, db_ref, dc_ref, *, precision, operand_dtype):
  """One chunk of one head_dim block, given the state entering it (P, N) and the cotangent of the state
  leaving it (P, N). Writes dx (Q, P) and this block's share of d dt (Q, 1) through dt*x only, of d a_cum as a
  column part (Q, 1) and a row part (1, Q) (their sum is the a_cum cotangent), and of dB and dC (Q, N)."""
  q = x_ref.shape[0]
  mm = _matmul(precision, operand_dtype)
  x, dt, acol, arow, bm, cm = _read_chunk(slice(None), slice(None), x_ref, dt_ref, acol_ref, arow_ref, b_ref,
                                          c_ref)
  state = state_ref[...]
  dstate_next = dstate_ref[...]
  dy = dy_ref[...].astype(jnp.float32)
  xdt = x * dt
  decay = _decay_matrix(acol, arow)
  m = mm(cm, bm, 1, 1) * decay
  alast = last_of_row(arow)
  to_end = jnp.exp(alast - acol)  # (Q, 1)
  e_in = jnp.exp(acol)  # (Q, 1)

  b_ds = mm(bm, dstate_next, 1, 1)  # (Q, P): B @ dS'^T
  dxdt = mm(m, dy, 0, 0) + to_end * b_ds
  dm = mm(dy, xdt, 1, 1)  # (Q, Q)
  dcb = dm * decay
  t = dm * m  # cotangent of the exponent a_i - a_j
  c_s = mm(cm, state, 1, 1)  # (Q, P)
  dy_e = dy * e_in
  dc = mm(dcb, bm, 1, 0) + e_in * mm(dy, state, 1, 0)
  db = mm(dcb, cm, 0, 0) + mm(xdt * to_end, dstate_next, 1, 0)
  g_term = to_end * jnp.sum(xdt * b_ds, axis=1, keepdims=True)  # (Q, 1)
  dalast = (jnp.sum(g_term, axis=0, keepdims=True)
            + jnp.exp(alast) * jnp.sum(jnp.sum(dstate_next * state, axis=1, keepdims=True), axis=0,
                                       keepdims=True))
  dacol = (jnp.sum(t, axis=1, keepdims=True) + jnp.sum(dy_e * c_s, axis=1, keepdims=True) - g_term
           + jnp.where(last_column_mask(q), dalast, 0.0))
  dx_ref[...] = (dxdt * dt).astype(dx_ref.dtype)
  ddt_ref[...] = jnp.sum(dxdt * x, axis=1, keepdims=True)
  dacol_ref[...] = dacol
  darow_ref[...] = -jnp.sum(t, axis=0, keepdims=True)
  db_ref[...] = db
  dc_ref[...] = dc
