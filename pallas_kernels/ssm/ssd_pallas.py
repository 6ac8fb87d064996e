"""Mamba-2 SSD scan as Pallas kernels (Triton on GPU, Mosaic on TPU, or interpreted) with a custom VJP.

The wrapper pads the sequence to whole chunks (dt = 0, a no-op), computes the chunk-local cumulative log-decays
a_cum = cumsum(dt * A) in plain jnp (so JAX differentiates that cheap step and the D skip), and calls a
`custom_vjp` core whose forward and backward are the kernels in `_ssd_kernels.py`: one forward kernel (sequential
over chunks, saving each chunk's entry state; or its raw Triton twin in `_triton_kernels.py`, impl="triton"), and
a backward of two kernels (a short sequential sweep for the state cotangent leaving each chunk, then a
chunk-parallel kernel for the gradients). Layout inside the core is head-major, (batch, heads, seq, ...). On the
GPU variant head_dim, d_state and the chunk are padded to powers of two >= 16 (Triton's matmul minimum); zero
padding does not change the result.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.ssm import _ssd_kernels
from pallas_kernels.ssm._pallas_common import (compiler_params, div_index, dot_precision, matmul_dtype, next_pow2,
                                               pad_axis, resolve_backend)
from pallas_kernels.ssm.ssd_reference import check_ssd_args

# Default chunk per backend when the caller passes chunk_size=None.
DEFAULT_CHUNK = {"gpu": 64, "tpu": 128}
# Largest chunk of the GPU variant: the backward chunk kernel's shared memory grows with it (chunk 128 overflowed
# an H200's shared memory in the first GPU run; experiments/bench/RESULTS.md, run 1).
GPU_MAX_CHUNK = 64
# Forward and backward head_dim blocks on GPU (None: whole head_dim). The TPU variant always takes the whole
# head_dim. Forward: splitting head_dim multiplies the programs of its sequential chunk sweep (the grid is
# otherwise only batch * heads). Backward chunk kernel: its grid already has a program per chunk, so a block
# only bounds a program's registers; each block repeats the (Q, Q, N) matmuls and writes its own dB, dC, d dt
# and d a_cum shares (summed afterwards), so fewer, larger blocks do less work (block 64 ran faster than 32 on
# an H200).
DEFAULT_BLOCK_P = {"gpu": 32, "tpu": None}
DEFAULT_BLOCK_P_BWD = {"gpu": 64, "tpu": None}
# Backward state-cotangent sweep: (head_dim, d_state) block of a program (None: whole) and Triton pipeline
# stages. Its entries of dS are independent, so blocks give it more programs; the stages prefetch the next
# chunks' dy and C, as its loop is latency-bound. (16, 64) with 3 stages was the fastest tried on an H200:
# larger blocks leave too few programs, smaller ones make more than help, each re-reading dy and C.
STATE_SWEEP_BLOCK = {"gpu": (16, 64), "tpu": (None, None)}
STATE_SWEEP_STAGES = 3
# Triton warps (forward with float32 / bfloat16 matmuls, backward state sweep and chunk kernel), from sm_90
# cubins for head_dim 64/128, d_state 64/128, chunk 64 and H200 timings. The chunk kernel spills more registers
# with 4 warps than with 8 yet ran faster; 2 warps ran far slower. float32 inputs spill either way (3-pass TF32
# operands) and time the same with 4 or 8 warps.
GPU_WARPS = {"fwd_f32": 4, "fwd_bf16": 8, "bwd_state": 4, "bwd_chunk": 4}


def _specs(shapes, index_maps):
  return [pl.BlockSpec(s, m) for s, m in zip(shapes, index_maps)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8, 9, 10, 11))
def _ssd_core(x, dt, acum, b, c, h0, q, bp, bpb, backend, interpret, forward_kernel):
  return _ssd_fwd(x, dt, acum, b, c, h0, q, bp, bpb, backend, interpret, forward_kernel)[0]


def _matmul_kw(backend, interpret, x, b, c):
  mdt = matmul_dtype(backend, x.dtype, b.dtype, c.dtype)
  return dict(precision=dot_precision(backend, interpret, mdt), operand_dtype=mdt)


def _feature_sizes(p, n, backend):
  """Kernel head_dim and d_state: powers of two >= 16 on GPU (Triton matmuls), unchanged on TPU."""
  return (next_pow2(p, 16), next_pow2(n, 16)) if backend == "gpu" else (p, n)


def _to_kernel_layout(x, dt, acum, b, c, h0, q, backend):
  """Native (batch, seq, ...) arrays (seq already a multiple of q) -> head-major, feature-padded arrays."""
  bsz, lp, h, p = x.shape
  pp, nn = _feature_sizes(p, b.shape[-1], backend)
  xk = pad_axis(jnp.transpose(x, (0, 2, 1, 3)), 3, pp)
  dtk = jnp.transpose(dt, (0, 2, 1))[..., None]
  acol = jnp.transpose(acum, (0, 2, 1))[..., None]
  arow = acol.reshape(bsz, h, lp // q, q)
  bk = pad_axis(jnp.transpose(b, (0, 2, 1, 3)), 3, nn)
  ck = pad_axis(jnp.transpose(c, (0, 2, 1, 3)), 3, nn)
  h0k = pad_axis(pad_axis(h0, 2, pp), 3, nn)
  return xk, dtk, acol, arow, bk, ck, h0k


def _ssd_fwd(x, dt, acum, b, c, h0, q, bp, bpb, backend, interpret, forward_kernel):
  """Grid (batch, heads, head_dim blocks of bp): a head_dim slice of y and of the state needs only that slice
  of x, so the forward pass splits head_dim for more parallel programs. forward_kernel "triton": the raw Triton
  kernel of the same sweep instead of the Pallas one (GPU, through jax_triton)."""
  p, (g, n) = x.shape[-1], b.shape[2:]
  args = _to_kernel_layout(x, dt, acum, b, c, h0, q, backend)
  bf16 = matmul_dtype(backend, x.dtype, b.dtype, c.dtype) == jnp.bfloat16
  if forward_kernel == "triton":
    y, ht, states = _ssd_fwd_triton(args, q, bp, bf16)
  else:
    y, ht, states = _ssd_fwd_pallas(args, q, bp, x.shape[2] // g, backend, interpret, bf16)
  y = jnp.transpose(y[..., :p], (0, 2, 1, 3))
  out = (y, ht[:, :, :p, :n])
  return out, (x, dt, acum, b, c, h0, states)


def _ssd_fwd_triton(args, q, bp, bf16):
  """The forward sweep as the raw Triton kernel (`_triton_kernels.ssd_fwd_kernel`) on kernel-layout arrays."""
  from pallas_kernels.ssm import _triton_kernels  # lazy: imports triton (the `[gpu]` extra)
  from pallas_kernels.ssm._jax_triton import triton_call

  xk, dtk, acol, _, bk, ck, h0k = args
  bsz, h, lp, pp = xk.shape
  g, nn = bk.shape[1], bk.shape[-1]
  f32 = jnp.float32
  return triton_call(
      xk, dtk, acol, bk, ck, h0k,
      kernel=_triton_kernels.ssd_fwd_kernel,
      out_shape=[jax.ShapeDtypeStruct((bsz, h, lp, pp), xk.dtype), jax.ShapeDtypeStruct((bsz, h, pp, nn), f32),
                 jax.ShapeDtypeStruct((bsz, h, lp // q, pp, nn), f32)],
      grid=(bsz * h, pp // bp),
      num_warps=GPU_WARPS["fwd_bf16" if bf16 else "fwd_f32"],
      HEADS=h, GROUPS=g, SEQ=lp, HEAD_DIM=pp, NSTATE=nn, CHUNK=q, BLOCK_P=bp, BF16=bf16)


def _ssd_fwd_pallas(args, q, bp, r, backend, interpret, bf16):
  """The forward sweep as the Pallas kernel (`_ssd_kernels.ssd_fwd_kernel`) on kernel-layout arrays."""
  xk, _, _, arow, bk, ck, _ = args
  bsz, h, lp, pp = xk.shape
  nc, nn = arow.shape[2], bk.shape[-1]
  head = lambda bi, hi, pi: (bi, hi, 0, 0)
  pslice = lambda bi, hi, pi: (bi, hi, 0, pi)
  state = lambda bi, hi, pi: (bi, hi, pi, 0)
  group = lambda bi, hi, pi: (bi, div_index(hi, r), 0, 0)
  f32 = jnp.float32
  return pl.pallas_call(
      functools.partial(_ssd_kernels.ssd_fwd_kernel, q=q, **_matmul_kw(backend, interpret, xk, bk, ck)),
      grid=(bsz, h, pp // bp),
      in_specs=_specs([(None, None, lp, bp), (None, None, lp, 1), (None, None, lp, 1), (None, None, nc, q),
                       (None, None, lp, nn), (None, None, lp, nn), (None, None, bp, nn)],
                      [pslice, head, head, head, group, group, state]),
      out_specs=[pl.BlockSpec((None, None, lp, bp), pslice), pl.BlockSpec((None, None, bp, nn), state),
                 pl.BlockSpec((None, None, nc, bp, nn), lambda bi, hi, pi: (bi, hi, 0, pi, 0))],
      out_shape=[jax.ShapeDtypeStruct((bsz, h, lp, pp), xk.dtype), jax.ShapeDtypeStruct((bsz, h, pp, nn), f32),
                 jax.ShapeDtypeStruct((bsz, h, nc, pp, nn), f32)],
      compiler_params=compiler_params(backend, interpret, 3, num_warps=GPU_WARPS["fwd_bf16" if bf16 else "fwd_f32"]),
      interpret=interpret,
      name="ssd_fwd",
  )(*args)


def _bwd_state_cotangents(dyk, acol, arow, ck, dhtk, q, r, backend, interpret, mm_kw):
  """Kernel 1 of the backward, grid (batch, heads, head_dim blocks, d_state blocks) of STATE_SWEEP_BLOCK: the
  sequential reverse sweep over chunks. Returns the cotangent of the state leaving every chunk
  (batch, heads, nc, P, N) and d h0 (batch, heads, P, N), both float32 and feature-padded."""
  bsz, h, lp, pp = dyk.shape
  nc, nn = arow.shape[2], ck.shape[-1]
  blk_p, blk_n = (min(blk or full, full) for blk, full in zip(STATE_SWEEP_BLOCK[backend], (pp, nn)))
  head = lambda bi, hi, pi, ni: (bi, hi, 0, 0)
  pslice = lambda bi, hi, pi, ni: (bi, hi, 0, pi)
  nslice = lambda bi, hi, pi, ni: (bi, div_index(hi, r), 0, ni)
  state = lambda bi, hi, pi, ni: (bi, hi, pi, ni)
  f32 = jnp.float32
  return pl.pallas_call(
      functools.partial(_ssd_kernels.ssd_bwd_state_kernel, q=q, **mm_kw),
      grid=(bsz, h, pp // blk_p, nn // blk_n),
      in_specs=_specs([(None, None, lp, 1), (None, None, nc, q), (None, None, lp, blk_n), (None, None, lp, blk_p),
                       (None, None, blk_p, blk_n)], [head, head, nslice, pslice, state]),
      out_specs=[pl.BlockSpec((None, None, nc, blk_p, blk_n), lambda bi, hi, pi, ni: (bi, hi, 0, pi, ni)),
                 pl.BlockSpec((None, None, blk_p, blk_n), state)],
      out_shape=[jax.ShapeDtypeStruct((bsz, h, nc, pp, nn), f32), jax.ShapeDtypeStruct((bsz, h, pp, nn), f32)],
      compiler_params=compiler_params(backend, interpret, 4, num_warps=GPU_WARPS["bwd_state"],
                                      num_stages=STATE_SWEEP_STAGES),
      interpret=interpret,
      name="ssd_bwd_state",
  )(acol, arow, ck, dyk, dhtk)


def _ssd_bwd(q, bp, bpb, backend, interpret, forward_kernel, res, cts):
  """Two kernels: `_bwd_state_cotangents` (sequential over chunks, cheap), then the chunk-parallel kernel, grid
  (batch, heads, chunks, head_dim blocks of bpb), whose programs each get one chunk's blocks. dx of a block
  needs only that block of x, dy and the states; dB, dC, d dt and d a_cum sum over head_dim, so each block
  writes its share along an extra block axis and the shares are added here."""
  del bp, forward_kernel  # the backward is the Pallas one whichever kernel ran the forward
  x, dt, acum, b, c, h0, states = res
  dy, dht = cts
  bsz, lp, h, p = x.shape
  g, n = b.shape[2:]
  r = h // g
  nc = lp // q
  mm_kw = _matmul_kw(backend, interpret, x, b, c)
  xk, dtk, acol, arow, bk, ck, _ = _to_kernel_layout(x, dt, acum, b, c, h0, q, backend)
  pp, nn = xk.shape[-1], bk.shape[-1]
  nb = pp // bpb
  dyk = pad_axis(jnp.transpose(dy.astype(x.dtype), (0, 2, 1, 3)), 3, pp)
  dhtk = pad_axis(pad_axis(dht.astype(jnp.float32), 2, pp), 3, nn)
  dstates, dh0 = _bwd_state_cotangents(dyk, acol, arow, ck, dhtk, q, r, backend, interpret, mm_kw)

  chunk = lambda bi, hi, ci, pi: (bi, hi, ci, 0)
  pchunk = lambda bi, hi, ci, pi: (bi, hi, ci, pi)
  group = lambda bi, hi, ci, pi: (bi, div_index(hi, r), ci, 0)
  row = lambda bi, hi, ci, pi: (bi, hi, ci, 0, 0)
  state = lambda bi, hi, ci, pi: (bi, hi, ci, pi, 0)
  share = lambda bi, hi, ci, pi: (bi, hi, pi, ci, 0)
  row_share = lambda bi, hi, ci, pi: (bi, hi, pi, ci, 0, 0)
  f32 = jnp.float32
  sds = jax.ShapeDtypeStruct
  # a_cum rows as (nc, 1, Q): a chunk's (1, Q) block then spans the array's last two dims (a TPU block rule).
  dx, ddt, dacol, darow, db, dc = pl.pallas_call(
      functools.partial(_ssd_kernels.ssd_bwd_chunk_kernel, **mm_kw),
      grid=(bsz, h, nc, nb),
      in_specs=_specs([(None, None, q, bpb), (None, None, q, 1), (None, None, q, 1), (None, None, None, 1, q),
                       (None, None, q, nn), (None, None, q, nn), (None, None, None, bpb, nn),
                       (None, None, None, bpb, nn), (None, None, q, bpb)],
                      [pchunk, chunk, chunk, row, group, group, state, state, pchunk]),
      out_specs=_specs([(None, None, q, bpb), (None, None, None, q, 1), (None, None, None, q, 1),
                        (None, None, None, None, 1, q), (None, None, None, q, nn), (None, None, None, q, nn)],
                       [pchunk, share, share, row_share, share, share]),
      out_shape=[sds((bsz, h, lp, pp), x.dtype), sds((bsz, h, nb, lp, 1), f32), sds((bsz, h, nb, lp, 1), f32),
                 sds((bsz, h, nb, nc, 1, q), f32), sds((bsz, h, nb, lp, nn), f32), sds((bsz, h, nb, lp, nn), f32)],
      compiler_params=compiler_params(backend, interpret, 4, num_warps=GPU_WARPS["bwd_chunk"]),
      interpret=interpret,
      name="ssd_bwd_chunk",
  )(xk, dtk, acol, arow.reshape(bsz, h, nc, 1, q), bk, ck, states, dstates, dyk)
  dx = jnp.transpose(dx[..., :p], (0, 2, 1, 3))
  ddt = jnp.transpose(ddt.sum(axis=2)[..., 0], (0, 2, 1)).astype(dt.dtype)
  dacum = dacol.sum(axis=2)[..., 0] + darow.sum(axis=2).reshape(bsz, h, lp)
  dacum = jnp.transpose(dacum, (0, 2, 1)).astype(acum.dtype)

  def per_group(d):  # (batch, heads, blocks, seq, nn) shares -> (batch, seq, groups, d_state) group sums
    d = d.reshape(bsz, g, r * nb, lp, nn).sum(axis=2)[..., :n]
    return jnp.transpose(d, (0, 2, 1, 3))

  dh0 = dh0[:, :, :p, :n].astype(h0.dtype)
  return dx, ddt, dacum, per_group(db).astype(b.dtype), per_group(dc).astype(c.dtype), dh0


_ssd_core.defvjp(_ssd_fwd, _ssd_bwd)


def _block(bp, pp, backend):
  """head_dim block: a power of two >= 16 up to the padded head_dim pp on GPU; the whole head_dim on TPU."""
  return min(next_pow2(bp, 16), pp) if backend == "gpu" and bp else pp


def ssd_pallas(x, dt, A, B, C, *, D=None, initial_state=None, chunk_size=64, return_final_state=False,
               interpret=False, backend=None, block_p=None, block_p_bwd=None, forward_kernel="pallas"):
  """Mamba-2 SSD scan through the Pallas kernels. Arguments, shapes and results as `ssd_reference`.

  Args (beyond the reference's):
    interpret: run the kernels in the Pallas interpreter (any backend).
    backend: "gpu" (Triton variant), "tpu" (Mosaic variant) or None (from the default backend; CPU -> "gpu").
      Naming it lets this CPU machine build either variant (for interpretation or cross-lowering).
    chunk_size: None picks DEFAULT_CHUNK[backend]; the chunk used is min(chunk_size, seq), rounded up to a
      power of two >= 16 and capped at GPU_MAX_CHUNK on the GPU variant, and up to a multiple of 8 on the TPU
      variant when shorter than seq (the result does not depend on it).
    block_p: head_dim block of the forward grid on GPU (power of two >= 16; default DEFAULT_BLOCK_P).
    block_p_bwd: head_dim block of the backward chunk kernel's grid on GPU (power of two >= 16; default
      DEFAULT_BLOCK_P_BWD).
    forward_kernel: "pallas", or "triton" for the raw Triton forward kernel (impl="triton": compiled GPU variant
      only, through jax_triton; the backward stays the Pallas one, fed the same residuals).
  """
  backend = resolve_backend(backend)
  if forward_kernel not in ("pallas", "triton"):
    raise ValueError(f"forward_kernel must be 'pallas' or 'triton'; got {forward_kernel!r}")
  if forward_kernel == "triton" and (backend != "gpu" or interpret):
    raise ValueError("forward_kernel='triton' runs the compiled GPU variant only (backend='gpu', interpret=False)")
  if chunk_size is None:
    chunk_size = DEFAULT_CHUNK[backend]
  bsz, l, h, p, g, n = check_ssd_args(x, dt, A, B, C, D, initial_state, chunk_size)
  q = max(1, min(int(chunk_size), l))
  if backend == "gpu":
    q = min(next_pow2(q, 16), GPU_MAX_CHUNK)
  elif q < l:  # TPU: the chunk kernel's (Q, ...) blocks need Q % 8 == 0 unless one chunk spans the sequence
    q = -(-q // 8) * 8
  lp = -(-l // q) * q
  pp = _feature_sizes(p, n, backend)[0]
  bp, bpb = (_block(blk or default[backend], pp, backend)
             for blk, default in ((block_p, DEFAULT_BLOCK_P), (block_p_bwd, DEFAULT_BLOCK_P_BWD)))
  f32 = jnp.float32
  xp, dtp = pad_axis(x, 1, lp), pad_axis(dt.astype(f32), 1, lp)
  b_p, c_p = pad_axis(B, 1, lp), pad_axis(C, 1, lp)
  acum = jnp.cumsum((dtp * A.astype(f32).reshape(1, 1, h)).reshape(bsz, lp // q, q, h), axis=2)
  acum = acum.reshape(bsz, lp, h)
  h0 = jnp.zeros((bsz, h, p, n), f32) if initial_state is None else initial_state.astype(f32)
  y, final = _ssd_core(xp, dtp, acum, b_p, c_p, h0, q, bp, bpb, backend, bool(interpret), forward_kernel)
  y = y[:, :l]
  if D is not None:
    y = (y.astype(f32) + x.astype(f32) * D.astype(f32).reshape(1, 1, h, 1)).astype(x.dtype)
  if return_final_state:
    return y, final
  return y
