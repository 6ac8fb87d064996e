"""Mamba-1 selective scan as Pallas kernels (Triton on GPU, Mosaic on TPU, or interpreted) with a custom VJP.

The wrapper applies delta_bias / softplus, the D skip and the silu(z) gate in plain jnp (JAX differentiates
them); the `custom_vjp` core runs only the recurrence, with forward and backward kernels from
`_selective_scan_kernels.py`. Channels are padded per group to a multiple of the channel block, the sequence to
whole chunks (delta = 0: a no-op), and on the GPU variant d_state to a power of two.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.ssm import _selective_scan_kernels as kernels
from pallas_kernels.ssm._pallas_common import compiler_params, div_index, next_pow2, pad_axis, resolve_backend
from pallas_kernels.ssm.selective_scan_reference import check_selective_scan_args, finish_output, prepare_delta

# Defaults per backend: channel block (lanes on TPU) and time steps unrolled per chunk.
DEFAULT_BLOCK_D = {"gpu": 32, "tpu": 128}
DEFAULT_CHUNK_T = {"gpu": 8, "tpu": 8}


def _pad_channels(x, axis, g, rp):
  """Pads the channel axis (g * r) of x to g * rp, group by group."""
  shape = x.shape
  x = x.reshape(shape[:axis] + (g, shape[axis] // g) + shape[axis + 1:])
  x = pad_axis(x, axis + 1, rp)
  return x.reshape(shape[:axis] + (g * rp,) + shape[axis + 1:])


def _maps(blocks_per_group):
  return dict(
      seq=lambda bi, j: (bi, 0, j),  # (b, Lp, dp) blocks (Lp, bd)
      group=lambda bi, j: (bi, div_index(j, blocks_per_group), 0, 0),  # (b, g, Lp, N)
      at=lambda bi, j: (0, j),  # (N, dp)
      state=lambda bi, j: (bi, 0, j),  # (b, N, dp)
      states=lambda bi, j: (bi, 0, 0, j),  # (b, nc, N, dp)
      partial=lambda bi, j: (bi, j, 0, 0),  # (b, nblocks, Lp, N)
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9))
def _scan_core(u, dl, at, b, c, h0, t, bd, backend, interpret):
  return _scan_fwd(u, dl, at, b, c, h0, t, bd, backend, interpret)[0]


def _scan_fwd(u, dl, at, b, c, h0, t, bd, backend, interpret):
  """u, dl: (b, Lp, dp); at: (N, dp); b, c: (b, g, Lp, N); h0: (b, N, dp) -> y (b, Lp, dp) f32, h_L."""
  bsz, lp, dp = u.shape
  g, n = b.shape[1], b.shape[3]
  nblk, nc = dp // bd, lp // t
  m = _maps(nblk // g)
  f32 = jnp.float32
  y, ht, states = pl.pallas_call(
      functools.partial(kernels.selective_scan_fwd_kernel, t=t),
      grid=(bsz, nblk),
      in_specs=[pl.BlockSpec((None, lp, bd), m["seq"]), pl.BlockSpec((None, lp, bd), m["seq"]),
                pl.BlockSpec((n, bd), m["at"]), pl.BlockSpec((None, None, lp, n), m["group"]),
                pl.BlockSpec((None, None, lp, n), m["group"]), pl.BlockSpec((None, n, bd), m["state"])],
      out_specs=[pl.BlockSpec((None, lp, bd), m["seq"]), pl.BlockSpec((None, n, bd), m["state"]),
                 pl.BlockSpec((None, nc, n, bd), m["states"])],
      out_shape=[jax.ShapeDtypeStruct((bsz, lp, dp), f32), jax.ShapeDtypeStruct((bsz, n, dp), f32),
                 jax.ShapeDtypeStruct((bsz, nc, n, dp), f32)],
      compiler_params=compiler_params(backend, interpret, 2),
      interpret=interpret,
      name="selective_scan_fwd",
  )(u, dl, at, b, c, h0)
  return (y, ht), (u, dl, at, b, c, states)


def _scan_bwd(t, bd, backend, interpret, res, cts):
  u, dl, at, b, c, states = res
  dy, dht = cts
  bsz, lp, dp = u.shape
  g, n = b.shape[1], b.shape[3]
  nblk = dp // bd
  nc = lp // t
  m = _maps(nblk // g)
  f32 = jnp.float32
  sds = jax.ShapeDtypeStruct
  seq = pl.BlockSpec((None, lp, bd), m["seq"])
  grp = pl.BlockSpec((None, None, lp, n), m["group"])
  state = pl.BlockSpec((None, n, bd), m["state"])
  part = pl.BlockSpec((None, None, lp, n), m["partial"])
  du, ddl, dat, db, dc, dh0 = pl.pallas_call(
      functools.partial(kernels.selective_scan_bwd_kernel, t=t),
      grid=(bsz, nblk),
      in_specs=[seq, seq, pl.BlockSpec((n, bd), m["at"]), grp, grp,
                pl.BlockSpec((None, nc, n, bd), m["states"]), seq, state],
      out_specs=[seq, seq, pl.BlockSpec((None, n, bd), m["state"]), part, part, state],
      out_shape=[sds((bsz, lp, dp), f32), sds((bsz, lp, dp), f32), sds((bsz, n, dp), f32),
                 sds((bsz, nblk, lp, n), f32), sds((bsz, nblk, lp, n), f32), sds((bsz, n, dp), f32)],
      compiler_params=compiler_params(backend, interpret, 2),
      interpret=interpret,
      name="selective_scan_bwd",
  )(u, dl, at, b, c, states, dy.astype(f32), dht.astype(f32))
  per_group = lambda d: d.reshape(bsz, g, nblk // g, lp, n).sum(axis=2).astype(b.dtype)
  return du.astype(u.dtype), ddl, dat.sum(axis=0), per_group(db), per_group(dc), dh0


_scan_core.defvjp(_scan_fwd, _scan_bwd)


def selective_scan_pallas(u, delta, A, B, C, *, D=None, z=None, delta_bias=None, delta_softplus=False,
                          initial_state=None, return_final_state=False, interpret=False, backend=None,
                          block_d=None, chunk_t=None):
  """Mamba-1 selective scan through the Pallas kernels. Arguments and results as `selective_scan_reference`.

  Args (beyond the reference's):
    interpret: run the kernels in the Pallas interpreter.
    backend: "gpu" (Triton variant), "tpu" (Mosaic variant) or None (from the default backend; CPU -> "gpu").
    block_d: channels per program (default DEFAULT_BLOCK_D[backend]; on GPU a power of two capped by the
      channels per group; on TPU all channels when one group fits, else a multiple of 128).
    chunk_t: time steps unrolled per loop iteration (default DEFAULT_CHUNK_T[backend]).
  """
  backend = resolve_backend(backend)
  bsz, l, d, g, n = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
  f32 = jnp.float32
  r = d // g
  bd = int(block_d or DEFAULT_BLOCK_D[backend])
  if backend == "gpu":
    bd = min(next_pow2(bd), next_pow2(r))
  elif g == 1 and r <= bd:
    bd = r  # one block spanning all channels: the full-dimension exception of the TPU block rule
  elif not interpret:
    bd = -(-bd // 128) * 128  # TPU lanes: a channel block is a multiple of 128 (interpret mode takes any)
  rp = -(-r // bd) * bd
  t = max(1, min(int(chunk_t or DEFAULT_CHUNK_T[backend]), l))
  lp = -(-l // t) * t
  nn = next_pow2(n) if backend == "gpu" else n

  dl = prepare_delta(delta, delta_bias, delta_softplus)
  u_k = pad_axis(_pad_channels(u, 2, g, rp), 1, lp)
  dl_k = pad_axis(_pad_channels(dl, 2, g, rp), 1, lp)
  at = pad_axis(jnp.transpose(_pad_channels(A.astype(f32), 0, g, rp)), 0, nn)
  b_k = pad_axis(pad_axis(jnp.transpose(B.astype(f32), (0, 2, 1, 3)), 2, lp), 3, nn)
  c_k = pad_axis(pad_axis(jnp.transpose(C.astype(f32), (0, 2, 1, 3)), 2, lp), 3, nn)
  h0 = jnp.zeros((bsz, d, n), f32) if initial_state is None else initial_state.astype(f32)
  h0_k = pad_axis(jnp.transpose(_pad_channels(h0, 1, g, rp), (0, 2, 1)), 1, nn)

  y, ht = _scan_core(u_k, dl_k, at, b_k, c_k, h0_k, t, bd, backend, bool(interpret))
  y = y[:, :l].reshape(bsz, l, g, rp)[..., :r].reshape(bsz, l, d)
  final = jnp.transpose(ht[:, :n].reshape(bsz, n, g, rp)[..., :r].reshape(bsz, n, d), (0, 2, 1))
  return finish_output(y, u, D, z, final, return_final_state)
