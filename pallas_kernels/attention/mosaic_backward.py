"""Backward kernels of the Mosaic GPU (Hopper) attention (FlashAttention-2 split backward, as `pallas_backward`'s
dk/dv and dq kernels): p = exp2(logits - lse) is recomputed per tile, ds = p * (dp - delta) * d logits / d s.

- dq: program (head, q tile, batch), each compute warpgroup holds `block_q` rows of q and dO; the memory
  warpgroup streams k and v blocks.
- dk/dv: program (kv head, kv tile, batch), each compute warpgroup holds `block_k` rows of k and v; the memory
  warpgroup streams q, dO, lse and delta blocks of every query head of the kv head's group, so grouped-KV gradients
  are summed in the kernel. Tiles are transposed (k.q^T), so p^T and ds^T come out of the matmul in the layout the
  products dv += p^T dO and dk += ds^T q take as their register operand.

`mosaic_common` describes the warpgroups and the ring of slots.
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


def _tile_grads(s_raw, dp, lse, delta, q_start, kv_start, head, spec, t: Tiling, *, masked, transposed):
  """(p, ds) of one tile from its raw scores and dp = dO.v^T (or their transposes), lse / delta broadcast along it."""
  s, keep, dlogits = mc.tile_logits(s_raw, q_start, kv_start, head, spec, t, masked=masked, transposed=transposed,
                                    with_grad=True)
  lse, delta = (mc.broadcast_rows(x, s.shape, transposed=transposed) for x in (lse, delta))
  return block_math.probs_and_dscores(s, keep, dlogits, lse, dp, delta, spec.scale)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, q_smem, do_smem, row_smem, own_ready, k_smem,
               v_smem, k_ready, v_ready, k_free, v_free, *, spec, t: Tiling, stages: int):
  """own_ready: 4 barrier arrays (q, dO, lse, delta), one barrier per compute warpgroup."""

  batch, head, wg, lo, hi, q_block, q_start = mc.q_major_program(
      spec, t, stages, (k_ref, v_ref), (k_smem, v_smem), (k_ready, v_ready), (k_free, v_free))

  @pl.when(wg < mb.MEMORY_WARPGROUP)
  def _compute():
    mc.compute_warpgroup_registers()
    rows, row_range = (batch, pl.ds(q_start, t.block_q), head), (batch, head, pl.ds(q_start, t.block_q))
    my_q, my_do = q_smem.at[wg], do_smem.at[wg]
    my_lse, my_delta = row_smem.at[0, wg], row_smem.at[1, wg]
    mc.load_own_rows([(q_ref.at[rows], my_q), (do_ref.at[rows], my_do), (lse_ref.at[row_range], my_lse),
                      (delta_ref.at[row_range], my_delta)], own_ready, wg)
    row_layout = plgpu.Layout.WGMMA.reduce(1)
    lse = plgpu.load(my_lse, (), layout=row_layout)
    delta = plgpu.load(my_delta, (), layout=row_layout)
    tile_shape = (t.block_q, t.block_k)

    def make_body(masked):
      def body(kv_block, dq):
        slot = lax.rem(kv_block - lo, jnp.int32(stages))
        plgpu.barrier_wait(k_ready.at[slot])
        s_raw = mc.matmul(my_q, plgpu.transpose_ref(k_smem.at[slot], (1, 0)), tile_shape)
        plgpu.barrier_wait(v_ready.at[slot])
        dp = mc.matmul(my_do, plgpu.transpose_ref(v_smem.at[slot], (1, 0)), tile_shape)
        plgpu.barrier_arrive(v_free.at[slot])
        _, ds = _tile_grads(s_raw, dp, lse, delta, q_start, kv_block * t.block_k, head, spec, t, masked=masked,
                            transposed=False)
        dq = mc.matmul(ds.astype(k_smem.dtype), k_smem.at[slot], dq.shape, acc=dq)
        plgpu.barrier_arrive(k_free.at[slot])
        return dq
      return body

    unmasked = block_math.unmasked_kv_block_range(q_block, lo, hi, spec, t)
    dq = block_math.loop_blocks(lo, hi, unmasked, make_body, mc.zeros((t.block_q, t.head_dim_pad)), spec, t)
    my_q[...] = dq.astype(my_q.dtype)  # q is no longer read
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(my_q, dq_ref.at[rows])
    plgpu.wait_smem_to_gmem(0)


def _dkdv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref, k_smem, v_smem, q_smem, do_smem,
                 row_smem, own_ready, ready, free, *, spec, t: Tiling, stages: int):
  """own_ready: 2 barrier arrays (k, v), one barrier per compute warpgroup; ready: 4 (q, dO, lse, delta), one
  barrier per slot; free: one per slot, two arrivals."""
  batch, kv_head, tile = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("kv_tile")
  wg = lax.axis_index("wg")
  lo, hi = mc.union_range(tile * mb.COMPUTE_WARPGROUPS, spec, t, block_math.q_block_range)
  n = hi - lo  # q blocks per query head of the group; the stream is (head g, q block) for g in the group

  def step_of(g, q_block):
    return g * n + q_block - lo

  def q_side(step):
    """(the q rows, the query head) a stream step holds."""
    return pl.ds((lo + lax.rem(step, n)) * t.block_q, t.block_q), kv_head * t.groups + lax.div(step, n)

  def q_rows(ref):
    return lambda step: ref.at[batch, q_side(step)[0], q_side(step)[1]]

  def q_range(ref):
    return lambda step: ref.at[batch, q_side(step)[1], q_side(step)[0]]

  @pl.when(wg == mb.MEMORY_WARPGROUP)
  def _memory():
    mc.stream(0, t.groups * n, stages, [(free, [
        (q_rows(q_ref), q_smem, ready[0]), (q_rows(do_ref), do_smem, ready[1]),
        (q_range(lse_ref), row_smem.at[0], ready[2]), (q_range(delta_ref), row_smem.at[1], ready[3])])])

  @pl.when(wg < mb.MEMORY_WARPGROUP)
  def _compute():
    mc.compute_warpgroup_registers()
    kv_block = tile * mb.COMPUTE_WARPGROUPS + wg
    kv_start = kv_block * t.block_k
    rows = batch, pl.ds(kv_start, t.block_k), kv_head
    my_k, my_v = k_smem.at[wg], v_smem.at[wg]
    mc.load_own_rows([(k_ref.at[rows], my_k), (v_ref.at[rows], my_v)], own_ready, wg)
    tile_shape = (t.block_k, t.block_q)
    column_layout = plgpu.Layout.WGMMA.reduce(0)

    def group_body(g, carry):
      head = kv_head * t.groups + g

      def make_body(masked):
        def body(q_block, carry):
          dk, dv = carry
          slot = lax.rem(step_of(g, q_block), jnp.int32(stages))
          for barriers in ready:
            plgpu.barrier_wait(barriers.at[slot])
          q, do = q_smem.at[slot], do_smem.at[slot]
          s_raw_t = mc.matmul(my_k, plgpu.transpose_ref(q, (1, 0)), tile_shape)
          dp_t = mc.matmul(my_v, plgpu.transpose_ref(do, (1, 0)), tile_shape)
          lse = plgpu.load(row_smem.at[0, slot], (), layout=column_layout)
          delta = plgpu.load(row_smem.at[1, slot], (), layout=column_layout)
          p_t, ds_t = _tile_grads(s_raw_t, dp_t, lse, delta, q_block * t.block_q, kv_start, head, spec, t,
                                  masked=masked, transposed=True)
          dv = mc.matmul(p_t.astype(do.dtype), do, dv.shape, acc=dv)
          dk = mc.matmul(ds_t.astype(q.dtype), q, dk.shape, acc=dk)
          plgpu.barrier_arrive(free.at[slot])
          return dk, dv
        return body

      unmasked = block_math.unmasked_q_block_range(kv_block, lo, hi, spec, t)
      return block_math.loop_blocks(lo, hi, unmasked, make_body, carry, spec, t)

    acc = mc.zeros((t.block_k, t.head_dim_pad))
    dk, dv = lax.fori_loop(0, t.groups, group_body, (acc, acc))
    my_k[...] = dk.astype(my_k.dtype)  # k and v are no longer read
    my_v[...] = dv.astype(my_v.dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(my_k, dk_ref.at[rows])
    plgpu.copy_smem_to_gmem(my_v, dv_ref.at[rows])
    plgpu.wait_smem_to_gmem(0)


def backward_delta(out, dout):
  """delta = rowsum(dO * O), float32 (B, H, q_pad): the softmax-gradient term both kernels subtract."""
  return jnp.swapaxes(jnp.sum(out.astype(jnp.float32) * dout.astype(jnp.float32), axis=-1), 1, 2)


def backward(q, k, v, out, lse, dout, spec: _common.AttentionSpec, dq_tiling: Tiling, dkdv_tiling: Tiling,
             stages: int):
  """dq, dk, dv (like q, k, v) from the padded kernel-layout inputs, the forward's out and base-2 lse
  (B, H, q_pad), and dout like out."""
  delta = backward_delta(out, dout)
  wgs = mb.COMPUTE_WARPGROUPS
  batch, _, heads, dim = q.shape
  kv_heads = k.shape[2]
  t = dq_tiling
  dq = mc.launch_q_major(
      functools.partial(_dq_kernel, spec=spec, t=t, stages=stages),
      out_type=jax.ShapeDtypeStruct(q.shape, q.dtype),
      own_scratch=[mc.smem((wgs, t.block_q, dim), q.dtype), mc.smem((wgs, t.block_q, dim), dout.dtype),
                   plgpu.SMEM((2, wgs, t.block_q), jnp.float32), (plgpu.Barrier(num_barriers=wgs),) * 4],
      t=t, stages=stages, heads=heads, batch=batch, kv_dtypes=(k.dtype, v.dtype), dim=dim,
  )(q, k, v, dout, lse, delta)
  t = dkdv_tiling
  dk, dv = plgpu.kernel(
      functools.partial(_dkdv_kernel, spec=spec, t=t, stages=stages),
      out_type=(jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
      scratch_types=[
          mc.smem((wgs, t.block_k, dim), k.dtype),
          mc.smem((wgs, t.block_k, dim), v.dtype),
          mc.smem((stages, t.block_q, dim), q.dtype),
          mc.smem((stages, t.block_q, dim), dout.dtype),
          plgpu.SMEM((2, stages, t.block_q), jnp.float32),
          (plgpu.Barrier(num_barriers=wgs),) * 2,
          (plgpu.Barrier(num_barriers=stages),) * 4,
          plgpu.Barrier(num_arrivals=wgs, num_barriers=stages),
      ],
      grid=(kv_heads, t.kv_pad // (wgs * t.block_k), batch),
      grid_names=("heads", "kv_tile", "batch"),
      num_threads=wgs + 1,
      thread_name="wg",
      compiler_params=mc.compiler_params(),
  )(q, k, v, dout, lse, delta)
  return dq, dk, dv
