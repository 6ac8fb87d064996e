"""Plain-jnp Mamba-1 selective scan: the CPU path and the oracle for the Pallas and Triton kernels.

Each channel d carries a (d_state,) state with its own decay exp(delta * A[d]). The scan runs in chunks of
`_CHUNK` steps: inside a chunk an associative scan combines (decay, input) pairs in parallel, and a `lax.scan`
over chunks carries the (batch, d_inner, d_state) state, so memory stays O(chunk * d_inner * d_state).
All math is float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_CHUNK = 32


def check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state):
  """Validates selective-scan argument shapes; returns (batch, seq, d_inner, groups, d_state)."""
  if u.ndim != 3:
    raise ValueError(f"u must be (batch, seq, d_inner); got shape {u.shape}")
  b, l, d = u.shape
  if delta.shape != (b, l, d):
    raise ValueError(f"delta must have u's shape {(b, l, d)}; got {delta.shape}")
  if A.ndim != 2 or A.shape[0] != d:
    raise ValueError(f"A must be (d_inner, d_state) with d_inner = {d}; got {A.shape}")
  n = A.shape[1]
  if B.ndim != 4 or B.shape[:2] != (b, l) or B.shape[3] != n:
    raise ValueError(f"B must be (batch, seq, groups, d_state) with batch, seq = {(b, l)} and d_state = {n}; "
                     f"got {B.shape}")
  if C.shape != B.shape:
    raise ValueError(f"C must have the same shape as B {B.shape}; got {C.shape}")
  g = B.shape[2]
  if g < 1 or d % g:
    raise ValueError(f"groups ({g}) must divide d_inner ({d}); change the group dimension of B and C")
  for name, v, shape in (("D", D, (d,)), ("delta_bias", delta_bias, (d,)), ("z", z, (b, l, d)),
                         ("initial_state", initial_state, (b, d, n))):
    if v is not None and v.shape != shape:
      raise ValueError(f"{name} must have shape {shape}; got {v.shape}")
  return b, l, d, g, n


def prepare_delta(delta, delta_bias, delta_softplus):
  """float32 delta + delta_bias, then softplus if asked. delta: (batch, seq, d_inner)."""
  delta = delta.astype(jnp.float32)
  if delta_bias is not None:
    delta = delta + delta_bias.astype(jnp.float32).reshape(1, 1, -1)
  if delta_softplus:
    delta = jax.nn.softplus(delta)
  return delta


def finish_output(y, u, D, z, final_state, return_final_state):
  """The epilogue every implementation shares: y (batch, seq, d_inner) float32 plus the D skip, times silu(z),
  cast to u's dtype; with `return_final_state`, (y, final_state)."""
  f32 = jnp.float32
  if D is not None:
    y = y + u.astype(f32) * D.astype(f32).reshape(1, 1, -1)
  if z is not None:
    y = y * jax.nn.silu(z.astype(f32))
  y = y.astype(u.dtype)
  return (y, final_state) if return_final_state else y


def selective_scan_reference(u, delta, A, B, C, *, D=None, z=None, delta_bias=None, delta_softplus=False,
                             initial_state=None, return_final_state=False):
  """Mamba-1 selective scan in plain jnp (float32 math).

  h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t  (per channel, a d_state vector);
  y_t = <C_t, h_t> + D * u_t;  y_t *= silu(z_t) if z is given.

  Args:
    u, delta: (batch, seq, d_inner). delta gets + delta_bias, then softplus if delta_softplus.
    A: (d_inner, d_state), negative reals.
    B, C: (batch, seq, groups, d_state); channel d uses group d // (d_inner // groups).
    D: optional (d_inner,) skip; z: optional (batch, seq, d_inner) gate; delta_bias: optional (d_inner,).
    initial_state: optional (batch, d_inner, d_state).
    return_final_state: also return h_L.

  Returns:
    y: (batch, seq, d_inner) in u.dtype; with return_final_state, (y, final_state), final_state
    (batch, d_inner, d_state) float32.
  """
  b, l, d, g, n = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
  f32 = jnp.float32
  r = d // g
  dl = prepare_delta(delta, delta_bias, delta_softplus)
  uf = u.astype(f32)
  q = min(_CHUNK, l)
  nc = -(-l // q)
  pad = nc * q - l

  def chunked(t):  # (b, l, ...) -> (nc, b, q, ...), zero-padded (delta = 0 makes padding a no-op)
    if pad:
      t = jnp.pad(t, [(0, 0), (0, pad)] + [(0, 0)] * (t.ndim - 2))
    return jnp.moveaxis(t.reshape((b, nc, q) + t.shape[2:]), 1, 0)

  dl_c = chunked(dl).reshape(nc, b, q, g, r, 1)
  du_c = chunked(dl * uf).reshape(nc, b, q, g, r, 1)
  b_c = chunked(B.astype(f32))[:, :, :, :, None, :]  # (nc, b, q, g, 1, n)
  c_c = chunked(C.astype(f32))[:, :, :, :, None, :]
  a = A.astype(f32).reshape(1, 1, g, r, n)
  h0 = jnp.zeros((b, g, r, n), f32) if initial_state is None else initial_state.astype(f32).reshape(b, g, r, n)

  def combine(left, right):
    return left[0] * right[0], right[0] * left[1] + right[1]

  def chunk_step(h, inp):
    dl_k, du_k, b_k, c_k = inp
    decay = jnp.exp(dl_k * a)  # (b, q, g, r, n)
    inc = du_k * b_k
    cum_decay, cum_inc = lax.associative_scan(combine, (decay, inc), axis=1)
    hs = cum_decay * h[:, None] + cum_inc  # states after each step of the chunk
    y = jnp.sum(hs * c_k, axis=-1)  # (b, q, g, r)
    return hs[:, -1], y

  final, y = lax.scan(chunk_step, h0, (dl_c, du_c, b_c, c_c))
  y = jnp.moveaxis(y, 0, 1).reshape(b, nc * q, d)[:, :l]
  return finish_output(y, u, D, z, final.reshape(b, d, n), return_final_state)
