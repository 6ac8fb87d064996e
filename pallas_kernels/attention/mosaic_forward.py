"""Forward kernel of the Mosaic GPU (Hopper) attention: online softmax over kv blocks with wgmma matmuls fed by TMA,
returning the output and the base-2 log-sum-exp (the residual the backward kernels read), like
`pallas_forward` computes them (`mosaic_common` describes the warpgroups and the ring of k/v slots).

Program (head, q tile, batch): q tile = 2 blocks of `block_q` rows, one per compute warpgroup. Inputs are in the
caller's (B, S, H, D) layout, zero padded (`layout.to_kernel_layout`); lse is (B, H, q_pad) float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.attention import _common, block_math, mosaic_blocks as mb, mosaic_common as mc
from pallas_kernels.attention.tiling import Tiling


def _kernel(q_ref, k_ref, v_ref, out_ref, lse_ref, q_smem, lse_smem, q_ready, schedule, k_smem, v_smem, k_ready,
            v_ready, k_free, v_free, *, spec: _common.AttentionSpec, t: Tiling, stages: int, pingpong: bool):
  """schedule: the ping-pong barrier (two arrivals), used only with `pingpong`."""

  def take_turns():  # both compute warpgroups meet here
    plgpu.barrier_arrive(schedule)
    plgpu.barrier_wait(schedule)

  batch, head, wg, lo, hi, q_block, q_start = mc.q_major_program(
      spec, t, stages, (k_ref, v_ref), (k_smem, v_smem), (k_ready, v_ready), (k_free, v_free))

  @pl.when(wg < mb.MEMORY_WARPGROUP)
  def _compute():
    mc.compute_warpgroup_registers()
    my_q = q_smem.at[wg]
    mc.load_own_rows([(q_ref.at[batch, pl.ds(q_start, t.block_q), head], my_q)], [q_ready], wg)
    tile_shape = (t.block_q, t.block_k)
    if pingpong:  # warpgroup 1 starts one turn behind: its matmuls run while warpgroup 0 computes its softmax
      pl.when(wg == 1)(take_turns)

    def make_body(masked):
      def body(kv_block, carry):
        m_prev, l_prev, acc = carry
        slot = lax.rem(kv_block - lo, jnp.int32(stages))
        plgpu.barrier_wait(k_ready.at[slot])
        s_raw = mc.matmul(my_q, plgpu.transpose_ref(k_smem.at[slot], (1, 0)), tile_shape,
                          after_issue=take_turns if pingpong else None)
        plgpu.barrier_arrive(k_free.at[slot])
        s, keep = mc.tile_logits(s_raw, q_start, kv_block * t.block_k, head, spec, t, masked=masked)
        if keep is not None:
          s = jnp.where(keep, s, block_math.MASK_VALUE)
        m_new = jnp.maximum(m_prev, s.max(axis=1))
        p = jnp.exp2(s - mc.broadcast_rows(m_new, tile_shape))
        if keep is not None:  # a row with nothing visible yet has m_new == MASK_VALUE and exp2(0) == 1
          p = jnp.where(keep, p, 0.0)
        alpha = jnp.exp2(m_prev - m_new)
        l_new = alpha * l_prev + p.sum(axis=1)
        acc = acc * mc.broadcast_rows(alpha, acc.shape)
        if pingpong:  # done with the softmax
          plgpu.barrier_arrive(schedule)
        plgpu.barrier_wait(v_ready.at[slot])
        if pingpong:  # the other warpgroup's matmuls are done: the tensor cores are ours
          plgpu.barrier_wait(schedule)
        acc = mc.matmul(p.astype(v_smem.dtype), v_smem.at[slot], acc.shape, acc=acc)
        plgpu.barrier_arrive(v_free.at[slot])
        return m_new, l_new, acc
      return body

    unmasked = block_math.unmasked_kv_block_range(q_block, lo, hi, spec, t)
    init = (mc.full_rows(t.block_q, block_math.MASK_VALUE), mc.zeros((t.block_q,)),
            mc.zeros((t.block_q, t.head_dim_pad)))
    m, l, acc = block_math.loop_blocks(lo, hi, unmasked, make_body, init, spec, t)
    if pingpong:  # warpgroup 0's last turn, matching warpgroup 1's first
      pl.when(wg == 0)(take_turns)
    empty = l == 0.0
    l_safe = jnp.where(empty, 1.0, l)
    my_q[...] = (acc / mc.broadcast_rows(l_safe, acc.shape)).astype(my_q.dtype)  # q is no longer read
    lse_smem.at[wg][...] = jnp.where(empty, block_math.FULLY_MASKED_LSE, m + jnp.log2(l_safe))
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(my_q, out_ref.at[batch, pl.ds(q_start, t.block_q), head])
    plgpu.copy_smem_to_gmem(lse_smem.at[wg], lse_ref.at[batch, head, pl.ds(q_start, t.block_q)])
    plgpu.wait_smem_to_gmem(0)


def forward(q, k, v, spec: _common.AttentionSpec, t: Tiling, stages: int, pingpong: bool = True):
  """q: (B, q_pad, H, D_pad); k, v: (B, kv_pad, KH, D_pad), zero padded, float16 / bfloat16.

  Returns out like q and the base-2 lse (B, H, q_pad) float32 (FULLY_MASKED_LSE for rows that see no key).
  """
  batch, _, heads, dim = q.shape
  wgs = mb.COMPUTE_WARPGROUPS
  return mc.launch_q_major(
      functools.partial(_kernel, spec=spec, t=t, stages=stages, pingpong=pingpong),
      out_type=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((batch, heads, t.q_pad), jnp.float32)),
      own_scratch=[mc.smem((wgs, t.block_q, dim), q.dtype), plgpu.SMEM((wgs, t.block_q), jnp.float32),
                   plgpu.Barrier(num_barriers=wgs), plgpu.Barrier(num_arrivals=wgs)],
      t=t, stages=stages, heads=heads, batch=batch, kv_dtypes=(k.dtype, v.dtype), dim=dim,
  )(q, k, v)
