"""Pallas forward kernel of flash attention: blocked online softmax over kv blocks, returning the output
and the per-row log-sum-exp in base 2 (log2 of the sum of 2^(logits * log2 e); the residual the backward
kernels need).

Grid (batch, heads, q blocks), in the backend's order (`layout.launch_grid`). Each program holds one q block
and the whole (padded) k/v of its kv head, and loops over the kv blocks it can see (causal / sliding-window
blocks outside the range are skipped; fully visible blocks run without mask arithmetic).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.attention import _common, block_math, layout, tiling as tiling_lib
from pallas_kernels.attention.tiling import Tiling


def _forward_kernel(q_ref, k_ref, v_ref, o_ref, lse_ref, *, spec: _common.AttentionSpec, t: Tiling):
  """q_ref: (block_q, D); k_ref, v_ref: (kv_pad, D); o_ref: (block_q, D); lse_ref: (block_q, 1) f32, base 2."""
  _, head, q_block = layout.program_ids(t, t.num_q_blocks)
  q_start = q_block * t.block_q
  q = q_ref[...]

  def make_body(masked):
    def body(kv_block, carry):
      m_prev, l_prev, acc = carry
      kv_start = pl.multiple_of(kv_block * t.block_k, t.block_k)
      k = k_ref[pl.ds(kv_start, t.block_k), :]
      v = v_ref[pl.ds(kv_start, t.block_k), :]
      s, keep = block_math.block_scores(block_math.dot_nt(q, k, t), q_start, kv_start, head, spec, t, masked=masked)
      if keep is not None:
        s = jnp.where(keep, s, block_math.MASK_VALUE)
      m_new = jnp.maximum(m_prev, jnp.max(s, axis=1, keepdims=True))
      p = jnp.exp2(s - m_new)
      if keep is not None:  # a row with nothing visible yet has m_new == MASK_VALUE and exp2(0) == 1
        p = jnp.where(keep, p, 0.0)
      alpha = jnp.exp2(m_prev - m_new)
      l_new = alpha * l_prev + jnp.sum(p, axis=1, keepdims=True)
      acc = alpha * acc + block_math.dot_nn(p.astype(v.dtype), v, t)
      return m_new, l_new, acc
    return body

  lo, hi = block_math.kv_block_range(q_block, spec, t)
  unmasked = block_math.unmasked_kv_block_range(q_block, lo, hi, spec, t)
  init = (jnp.full((t.block_q, 1), block_math.MASK_VALUE, jnp.float32),
          jnp.zeros((t.block_q, 1), jnp.float32),
          jnp.zeros((t.block_q, t.head_dim_pad), jnp.float32))
  m, l, acc = block_math.loop_blocks(lo, hi, unmasked, make_body, init, spec, t)
  empty = l == 0.0
  l_safe = jnp.where(empty, 1.0, l)
  o_ref[...] = (acc / l_safe).astype(o_ref.dtype)
  lse_ref[...] = jnp.where(empty, block_math.FULLY_MASKED_LSE, m + jnp.log2(l_safe))


def forward(q, k, v, spec: _common.AttentionSpec, t: Tiling):
  """Flash-attention forward on kernel-layout arrays.

  Args:
    q: (B, q_pad, H, D_pad); k, v: (B, kv_pad, KH, D_pad), zero padded, in the kernel layout
      (`layout.to_kernel_layout`: head-major (B, H, S, D_pad) on TPU).

  Returns:
    out like q, in q.dtype, and the base-2 lse (B, H, q_pad, 1) float32.
  """
  batch, heads = q.shape[0], q.shape[1 if layout.head_major(t) else 2]
  sq = layout.squeezed_dim()
  n = t.num_q_blocks
  index_map = functools.partial(layout.grid_index_map, t, n)
  q_spec = layout.head_block_spec(t, t.block_q, index_map(lambda b, h, i: (b, h, i)))
  kv_spec = layout.head_block_spec(t, t.kv_pad, index_map(lambda b, h, i: (b, block_math.kv_head_of(h, t), 0)))
  lse_spec = pl.BlockSpec((sq, sq, t.block_q, 1), index_map(lambda b, h, i: (b, h, i, 0)))
  return pl.pallas_call(
      functools.partial(_forward_kernel, spec=spec, t=t),
      out_shape=(jax.ShapeDtypeStruct(q.shape, q.dtype),
                 jax.ShapeDtypeStruct((batch, heads, t.q_pad, 1), jnp.float32)),
      grid=layout.launch_grid(t, batch, heads, n),
      in_specs=[q_spec, kv_spec, kv_spec],
      out_specs=(q_spec, lse_spec),
      name="flash_attention_forward",
      **tiling_lib.call_kwargs(t, 3),
  )(q, k, v)
