"""Pallas backward kernels of flash attention (FlashAttention-2): with delta = rowsum(dO * O) precomputed,
one kernel accumulates dk/dv per kv block (looping over the q blocks of every query head in its group, so
grouped-KV gradients are summed in-kernel) and one accumulates dq per q block (looping over kv blocks). Or,
fused (`BlockSizes(backward="fused")`, GPU and interpreter), the dk/dv kernel also adds each tile's ds.k into a
float32 dq buffer with atomic adds: 5 matmuls per tile instead of 7, the scores computed once.

Both recompute p = exp2(logits - lse) per tile (base-2 logits and lse, see `block_math.LOG2E`); softcap /
score_mod are differentiated elementwise (jvp). The dk/dv kernel works on transposed tiles (k.q^T, of shape
(block_k, block_q)): p^T and ds^T then come out of the matmul in the layout the next products dv += p^T dO and
dk += ds^T q consume, with no transpose of a tile in registers; for that it reads lse and delta as rows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.attention import _common, block_math, layout, tiling as tiling_lib
from pallas_kernels.attention.tiling import Tiling


def _tile_grads(q, k, v, do, lse, delta, q_start, kv_start, head, spec, t, *, masked, transposed):
  """Returns (p, ds) for one tile: p = softmax probs, ds = d loss / d raw q.k, both float32 (bq, bk), or
  (bk, bq) when `transposed` (then lse and delta are (1, bq) rows, else (bq, 1) columns)."""
  s_raw, dp = ((block_math.dot_nt(k, q, t), block_math.dot_nt(v, do, t)) if transposed
               else (block_math.dot_nt(q, k, t), block_math.dot_nt(do, v, t)))
  s, keep, dlogits = block_math.block_scores(s_raw, q_start, kv_start, head, spec, t, with_grad=True,
                                             masked=masked, transposed=transposed)
  return block_math.probs_and_dscores(s, keep, dlogits, lse, dp, delta, spec.scale)


def _dkdv_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, *refs, spec, t: Tiling, with_dq: bool):
  """q_ref, do_ref: (q_pad, G, D) ((G, q_pad, D) head-major); lse_ref, delta_ref: (G, 1, q_pad) rows;
  k/v refs: (block_k, D); refs: dk_ref, dv_ref ((block_k, D)), or, with_dq, the float32 dq buffer (like q_ref;
  input and output alias), dk_ref, dv_ref and the dq buffer again."""
  dk_ref, dv_ref, dq_ref = refs[1:] if with_dq else (*refs, None)
  if with_dq:  # imported here, like the GPU compiler params (`_dispatch`): TPU-only hosts never need it
    from jax.experimental.pallas import triton as plgpu
  _, kv_head, kv_block = layout.program_ids(t, t.num_kv_blocks)
  kv_start = kv_block * t.block_k
  k, v = k_ref[...], v_ref[...]
  lo, hi = block_math.q_block_range(kv_block, spec, t)
  unmasked = block_math.unmasked_q_block_range(kv_block, lo, hi, spec, t)

  def group_body(g, carry):
    def make_body(masked):
      def body(q_block, carry):
        dk, dv = carry
        q_start = pl.multiple_of(q_block * t.block_q, t.block_q)
        rows = pl.ds(q_start, t.block_q)
        q, do = layout.group_rows(q_ref, t, g, rows), layout.group_rows(do_ref, t, g, rows)
        p_t, ds_t = _tile_grads(q, k, v, do, lse_ref[g, :, rows], delta_ref[g, :, rows], q_start, kv_start,
                                kv_head * t.groups + g, spec, t, masked=masked, transposed=True)
        ds_t = ds_t.astype(q.dtype)
        dv = dv + block_math.dot_nn(p_t.astype(do.dtype), do, t)
        dk = dk + block_math.dot_nn(ds_t, q, t)
        if dq_ref is not None:  # programs of other kv blocks add into the same rows
          plgpu.atomic_add(dq_ref, layout.group_index(t, g, rows), block_math.dot_tn(ds_t, k, t))
        return dk, dv
      return body

    return block_math.loop_blocks(lo, hi, unmasked, make_body, carry, spec, t)

  zeros = jnp.zeros((t.block_k, t.head_dim_pad), jnp.float32)
  dk, dv = jax.lax.fori_loop(0, t.groups, group_body, (zeros, zeros))
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _dq_kernel(q_ref, do_ref, lse_ref, delta_ref, k_ref, v_ref, dq_ref, *, spec, t: Tiling):
  """q_ref, do_ref, dq_ref: (block_q, D); lse_ref, delta_ref: (block_q, 1); k_ref, v_ref: (kv_pad, D)."""
  _, head, q_block = layout.program_ids(t, t.num_q_blocks)
  q_start = q_block * t.block_q
  q, do, lse, delta = q_ref[...], do_ref[...], lse_ref[...], delta_ref[...]

  def make_body(masked):
    def body(kv_block, dq):
      kv_start = pl.multiple_of(kv_block * t.block_k, t.block_k)
      k = k_ref[pl.ds(kv_start, t.block_k), :]
      v = v_ref[pl.ds(kv_start, t.block_k), :]
      _, ds = _tile_grads(q, k, v, do, lse, delta, q_start, kv_start, head, spec, t, masked=masked,
                          transposed=False)
      return dq + block_math.dot_nn(ds.astype(k.dtype), k, t)
    return body

  lo, hi = block_math.kv_block_range(q_block, spec, t)
  unmasked = block_math.unmasked_kv_block_range(q_block, lo, hi, spec, t)
  dq = block_math.loop_blocks(lo, hi, unmasked, make_body, jnp.zeros((t.block_q, t.head_dim_pad), jnp.float32),
                              spec, t)
  dq_ref[...] = dq.astype(dq_ref.dtype)


def backward_delta(out, dout, t: Tiling):
  """delta = rowsum(dO * O), float32 (B, H, q_pad, 1): the softmax-gradient term both kernels subtract.
  out, dout in the kernel layout."""
  delta = jnp.sum(out.astype(jnp.float32) * dout.astype(jnp.float32), axis=-1, keepdims=True)
  return delta if layout.head_major(t) else jnp.swapaxes(delta, 1, 2)


def dkdv(q, k, v, dout, lse, delta, spec: _common.AttentionSpec, t: Tiling):
  """dk, dv like k and v, in their dtypes; grid over (batch, kv head, kv block), the q-side blocks
  holding all G query heads of the group. Arguments as `backward`, dout in q's dtype, delta from
  `backward_delta`; lse and delta are read as rows."""
  return _dkdv_call(q, k, v, dout, lse, delta, spec, t, with_dq=False)


def fused(q, k, v, dout, lse, delta, spec: _common.AttentionSpec, t: Tiling):
  """(dq, dk, dv) from the dk/dv kernel that also adds each tile's dq into a float32 buffer with atomic adds
  (so summed in a nondeterministic order); dq like q, dk and dv like k and v. Arguments as `dkdv`."""
  dk, dv, dq_sum = _dkdv_call(q, k, v, dout, lse, delta, spec, t, with_dq=True)
  return dq_sum.astype(q.dtype), dk, dv


def _dkdv_call(q, k, v, dout, lse, delta, spec, t: Tiling, *, with_dq: bool):
  """The dk/dv kernel's pallas_call: (dk, dv), or `with_dq` (dk, dv, float32 dq sums: the fused backward)."""
  batch, kv_heads = k.shape[0], k.shape[1 if layout.head_major(t) else 2]
  sq = layout.squeezed_dim()
  g, n = t.groups, t.num_kv_blocks
  index_map = functools.partial(layout.grid_index_map, t, n)
  group_spec = layout.head_block_spec(t, t.q_pad, index_map(lambda b, h, j: (b, h, 0)), heads=g)
  group_row_spec = pl.BlockSpec((sq, g, 1, t.q_pad), index_map(lambda b, h, j: (b, h, 0, 0)))
  kv_tile_spec = layout.head_block_spec(t, t.block_k, index_map(lambda b, h, j: (b, h, j)))
  in_specs = [group_spec, group_spec, group_row_spec, group_row_spec, kv_tile_spec, kv_tile_spec]
  out_shape = [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)]
  out_specs = [kv_tile_spec, kv_tile_spec]
  args = [q, dout, jnp.swapaxes(lse, 2, 3), jnp.swapaxes(delta, 2, 3), k, v]
  if with_dq:
    in_specs.append(group_spec)
    out_specs.append(group_spec)
    out_shape.append(jax.ShapeDtypeStruct(q.shape, jnp.float32))
    args.append(jnp.zeros(q.shape, jnp.float32))
  return pl.pallas_call(
      functools.partial(_dkdv_kernel, spec=spec, t=t, with_dq=with_dq),
      out_shape=tuple(out_shape),
      grid=layout.launch_grid(t, batch, kv_heads, n),
      in_specs=in_specs,
      out_specs=tuple(out_specs),
      input_output_aliases={len(args) - 1: 2} if with_dq else {},
      name="flash_attention_backward_fused" if with_dq else "flash_attention_backward_dkdv",
      **tiling_lib.call_kwargs(t, 3),
  )(*args)


def dq(q, k, v, dout, lse, delta, spec: _common.AttentionSpec, t: Tiling):
  """dq like q, in its dtype; grid over (batch, head, q block), each program looping over the kv
  blocks it can see. Arguments as `dkdv`."""
  batch, heads = q.shape[0], q.shape[1 if layout.head_major(t) else 2]
  sq = layout.squeezed_dim()
  n = t.num_q_blocks
  index_map = functools.partial(layout.grid_index_map, t, n)
  q_tile_spec = layout.head_block_spec(t, t.block_q, index_map(lambda b, h, i: (b, h, i)))
  row_spec = pl.BlockSpec((sq, sq, t.block_q, 1), index_map(lambda b, h, i: (b, h, i, 0)))
  kv_spec = layout.head_block_spec(t, t.kv_pad, index_map(lambda b, h, i: (b, block_math.kv_head_of(h, t), 0)))
  return pl.pallas_call(
      functools.partial(_dq_kernel, spec=spec, t=t),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
      grid=layout.launch_grid(t, batch, heads, n),
      in_specs=[q_tile_spec, q_tile_spec, row_spec, row_spec, kv_spec, kv_spec],
      out_specs=q_tile_spec,
      name="flash_attention_backward_dq",
      **tiling_lib.call_kwargs(t, 3),
  )(q, dout, lse, delta, k, v)


def backward(q, k, v, out, lse, dout, spec: _common.AttentionSpec, tilings: tiling_lib.Tilings):
  """Gradients of flash attention on kernel-layout arrays.

  Args:
    q, out, dout: (B, q_pad, H, D_pad); k, v: (B, kv_pad, KH, D_pad), in the kernel layout (head-major on
      TPU, see `layout.to_kernel_layout`); lse: (B, H, q_pad, 1) float32, base 2 (from the forward kernel).
    tilings: the backward kernels' tilings: `tilings.dkdv` and `tilings.dq`, or `tilings.fused`.

  Returns:
    dq like q, dk and dv like k and v, in their dtypes.
  """
  dout = dout.astype(q.dtype)
  delta = backward_delta(out, dout, tilings.forward)
  if tilings.fused is not None:
    return fused(q, k, v, dout, lse, delta, spec, tilings.fused)
  dk, dv = dkdv(q, k, v, dout, lse, delta, spec, tilings.dkdv)
  return dq(q, k, v, dout, lse, delta, spec, tilings.dq), dk, dv
