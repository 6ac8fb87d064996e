"""Pallas backward kernels of flash attention (FlashAttention-2): with delta = rowsum(dO * O) precomputed,
one kernel accumulates dk/dv per kv block (looping over the q blocks of every query head in its group, so
grouped-KV gradients are summed in-kernel) and one accumulates dq per q block (looping over kv blocks).

Both recompute p = exp(logits - lse) per tile; softcap / score_mod are differentiated elementwise (jvp).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.attention import _common, block_math, tiling as tiling_lib
from pallas_kernels.attention.tiling import Tiling


def _tile_grads(q, k, v, do, lse, delta, q_start, kv_start, head, spec, t):
  """Returns (p, ds) for one tile: p = softmax probs, ds = d loss / d raw q.k (both f32 (bq, bk))."""
  s, keep, dlogits = block_math.block_scores(
      block_math.dot_nt(q, k), q_start, kv_start, head, spec, t, with_grad=True)
  p = jnp.exp(s - lse)
  if keep is not None:
    p = jnp.where(keep, p, 0.0)
  ds = p * (block_math.dot_nt(do, v) - delta)
  if dlogits is None:
    ds = ds * spec.scale
  else:
    ds = ds * dlogits
    if keep is not None:  # a hook's derivative may be non-finite where the key is masked
      ds = jnp.where(keep, ds, 0.0)
  return p, ds


def _dkdv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, dk_ref, dv_ref, *, spec, t: Tiling):
  """q_ref, do_ref: (G, q_pad, D); lse_ref, delta_ref: (G, q_pad, 1); k/v/dk/dv refs: (block_k, D)."""
  kv_head, kv_block = pl.program_id(1), pl.program_id(2)
  kv_start = kv_block * t.block_k
  k, v = k_ref[...], v_ref[...]
  lo, hi = block_math.q_block_range(kv_block, spec, t)

  def group_body(g, carry):
    def q_body(q_block, carry):
      dk, dv = carry
      q_start = pl.multiple_of(q_block * t.block_q, t.block_q)
      rows = pl.ds(q_start, t.block_q)
      q, do = q_ref[g, rows, :], do_ref[g, rows, :]
      p, ds = _tile_grads(q, k, v, do, lse_ref[g, rows, :], delta_ref[g, rows, :], q_start, kv_start,
                          kv_head * t.groups + g, spec, t)
      dv = dv + block_math.dot_nn(p.T.astype(do.dtype), do)
      dk = dk + block_math.dot_nn(ds.T.astype(q.dtype), q)
      return dk, dv

    return jax.lax.fori_loop(lo, hi, q_body, carry)

  zeros = jnp.zeros((t.block_k, t.head_dim_pad), jnp.float32)
  dk, dv = jax.lax.fori_loop(0, t.groups, group_body, (zeros, zeros))
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _dq_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, dq_ref, *, spec, t: Tiling):
  """q_ref, do_ref, dq_ref: (block_q, D); lse_ref, delta_ref: (block_q, 1); k_ref, v_ref: (kv_pad, D)."""
  head, q_block = pl.program_id(1), pl.program_id(2)
  q_start = q_block * t.block_q
  q, do, lse, delta = q_ref[...], do_ref[...], lse_ref[...], delta_ref[...]

  def body(kv_block, dq):
    kv_start = pl.multiple_of(kv_block * t.block_k, t.block_k)
    k = k_ref[pl.ds(kv_start, t.block_k), :]
    v = v_ref[pl.ds(kv_start, t.block_k), :]
    _, ds = _tile_grads(q, k, v, do, lse, delta, q_start, kv_start, head, spec, t)
    return dq + block_math.dot_nn(ds.astype(k.dtype), k)

  lo, hi = block_math.kv_block_range(q_block, spec, t)
  dq = jax.lax.fori_loop(lo, hi, body, jnp.zeros((t.block_q, t.head_dim_pad), jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def backward(q, k, v, out, lse, dout, spec: _common.AttentionSpec, t: Tiling):
  """Gradients of flash attention on kernel-layout arrays.

  Args:
    q, out, dout: (B, H, q_pad, D_pad); k, v: (B, KH, kv_pad, D_pad); lse: (B, H, q_pad, 1) float32.

  Returns:
    dq (B, H, q_pad, D_pad), dk and dv (B, KH, kv_pad, D_pad), in the dtypes of q, k, v.
  """
  batch, heads = q.shape[:2]
  kv_heads = k.shape[1]
  dout = dout.astype(q.dtype)
  delta = jnp.sum(out.astype(jnp.float32) * dout.astype(jnp.float32), axis=-1, keepdims=True)
  sq = tiling_lib.squeezed_dim()
  d, g = t.head_dim_pad, t.groups

  # dk, dv: grid over (batch, kv head, kv block); the q-side blocks hold all G query heads of the group.
  group_spec = pl.BlockSpec((sq, g, t.q_pad, d), lambda b, h, j: (b, h, 0, 0))
  group_row_spec = pl.BlockSpec((sq, g, t.q_pad, 1), lambda b, h, j: (b, h, 0, 0))
  kv_tile_spec = pl.BlockSpec((sq, sq, t.block_k, d), lambda b, h, j: (b, h, j, 0))
  dk, dv = pl.pallas_call(
      functools.partial(_dkdv_kernel, spec=spec, t=t),
      out_shape=(jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
      grid=(batch, kv_heads, t.num_kv_blocks),
      in_specs=[group_spec, group_spec, group_row_spec, group_row_spec, kv_tile_spec, kv_tile_spec],
      out_specs=(kv_tile_spec, kv_tile_spec),
      name="flash_attention_backward_dkdv",
      **tiling_lib.call_kwargs(t, 3),
  )(q, dout, lse, delta, k, v)

  # dq: grid over (batch, head, q block); each program loops over the kv blocks it can see.
  q_tile_spec = pl.BlockSpec((sq, sq, t.block_q, d), lambda b, h, i: (b, h, i, 0))
  row_spec = pl.BlockSpec((sq, sq, t.block_q, 1), lambda b, h, i: (b, h, i, 0))
  kv_spec = pl.BlockSpec((sq, sq, t.kv_pad, d), lambda b, h, i: (b, block_math.kv_head_of(h, t), 0, 0))
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, spec=spec, t=t),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
      grid=(batch, heads, t.num_q_blocks),
      in_specs=[q_tile_spec, q_tile_spec, row_spec, row_spec, kv_spec, kv_spec],
      out_specs=q_tile_spec,
      name="flash_attention_backward_dq",
      **tiling_lib.call_kwargs(t, 3),
  )(q, dout, lse, delta, k, v)
  return dq, dk, dv
