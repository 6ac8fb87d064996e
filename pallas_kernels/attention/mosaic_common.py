"""In-kernel helpers of the Hopper (sm_90) attention kernels written in Pallas Mosaic GPU (`impl="mosaic"`): the
shared-memory layout their tensor-core matmuls (wgmma) read, accumulators, and the score tile of one warpgroup with
this API's hooks and masks (what the kernels accept and their block sizes: `mosaic_blocks`).

Every kernel runs three warpgroups per program: two compute warpgroups, each holding its own block of rows (q rows
in the forward and dq kernels, kv rows in the dk/dv kernel), and one memory warpgroup that streams the other side's
blocks into a ring of shared-memory slots with TMA copies. A compute warpgroup waits on a slot's "ready" barrier,
computes, then arrives on its "free" barrier (two arrivals, one per compute warpgroup), which the memory warpgroup
waits on before refilling the slot. Both compute warpgroups walk the union of their block ranges (causal / window
ranges differ by at most a block or two), so the barriers' phases stay in step; a tile outside a warpgroup's own
range is masked to nothing.

Hooks: `score_mod` and `mask_mod` get full tiles (q_idx and kv_idx broadcast to the tile's shape; in the dk/dv
kernel the tile is transposed, keys down the rows), which an elementwise hook, as the API asks for, cannot tell apart
from the documented (Q, 1) / (1, K) shapes. The ops a hook uses must have Mosaic GPU lowerings (jnp arithmetic,
comparisons, where, exp/exp2/tanh: yes; gathers of captured tables: no).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.attention import _common, block_math
from pallas_kernels.attention.mosaic_blocks import COMPUTE_WARPGROUPS
from pallas_kernels.attention.tiling import Tiling

def smem(shape, dtype):
  """Shared-memory scratch in the swizzled layout wgmma and TMA read (8 x 64 tiles of 2-byte elements, 128-byte
  swizzle: 64 elements per row)."""
  return plgpu.SMEM(shape, dtype, transforms=(plgpu.TilingTransform((8, 64)), plgpu.SwizzleTransform(128)))


def compiler_params():
  return plgpu.CompilerParams(approx_math=True)


def zeros(shape):
  """float32 zeros in the wgmma accumulator layout (a (rows, cols) tile) or its row-vector layout ((rows,))."""
  layout = plgpu.Layout.WGMMA if len(shape) == 2 else plgpu.Layout.WGMMA.reduce(1)
  return plgpu.layout_cast(jnp.zeros(shape, jnp.float32), layout)


def full_rows(rows: int, value: float):
  return plgpu.layout_cast(jnp.full((rows,), value, jnp.float32), plgpu.Layout.WGMMA.reduce(1))


def matmul(a, b, shape, acc=None):
  """a @ b on the tensor cores (wgmma) into a float32 (rows, cols) `shape`, plus `acc` when given (accumulated in
  place). a: a shared-memory ref or a register array (wgmma layout); b: a shared-memory ref (use
  `plgpu.transpose_ref` for b.T)."""

  def run(acc_ref):
    plgpu.wgmma(acc_ref, a, b)
    return acc_ref[...]

  if acc is None:
    return pl.run_scoped(run, plgpu.ACC(shape, jnp.float32))

  def accumulate(acc_ref):
    plgpu.wgmma(acc_ref, a, b)

  return pl.run_state(accumulate)(plgpu.ACC.init(acc))


def broadcast_rows(x, shape, *, transposed=False):
  """A per-row vector (rows,) broadcast along a (rows, cols) tile, or, `transposed`, a per-column vector along it."""
  return jax.lax.broadcast_in_dim(x, shape, [1 if transposed else 0])


def tile_logits(s_raw, q_start, kv_start, head, spec: _common.AttentionSpec, t: Tiling, *, masked: bool,
                transposed: bool = False, with_grad: bool = False):
  """Base-2 logits (logits * log2 e) and keep-mask of one float32 score tile in the wgmma layout, as
  `block_math.block_scores` computes them for the other kernels, with the hooks seeing full tiles.

  s_raw: (block_q, block_k) q.k products, or (block_k, block_q) k.q products when `transposed`.
  Returns (logits, keep[, dlogits]); keep None when nothing is masked; dlogits None means the constant scale.
  """
  q_axis, kv_axis = (1, 0) if transposed else (0, 1)

  def iota(axis):
    return plgpu.broadcasted_iota(jnp.int32, s_raw.shape, axis, layout=plgpu.Layout.WGMMA)

  row = q_start + iota(q_axis)
  kv_idx = kv_start + iota(kv_axis)
  q_idx = row + (t.kv_len - t.q_len)
  dlogits = None
  if spec.softcap is None and spec.score_mod is None:
    logits = s_raw * (spec.scale * block_math.LOG2E)
  elif with_grad:
    logits, dlogits = _common.transform_scores_and_grad(s_raw, q_idx, kv_idx, head, spec)
    logits = logits * block_math.LOG2E
  else:
    logits = _common.transform_scores(s_raw, q_idx, kv_idx, head, spec) * block_math.LOG2E
  keep = None
  if masked:
    keep = _common.keep_mask(q_idx, kv_idx, head, spec)
    for needed, condition in ((t.kv_pad != t.kv_len, lambda: kv_idx < t.kv_len),
                              (t.q_pad != t.q_len, lambda: row < t.q_len)):
      if needed:
        keep = condition() if keep is None else jnp.logical_and(keep, condition())
  return (logits, keep, dlogits) if with_grad else (logits, keep)


def union_range(first_block, spec: _common.AttentionSpec, t: Tiling, range_fn):
  """[lo, hi) of the other side's blocks that either compute warpgroup's own block (first_block, first_block + 1)
  can see: `range_fn` is `block_math.kv_block_range` or `block_math.q_block_range` (both monotone in the block)."""
  lo, _ = range_fn(first_block, spec, t)
  _, hi = range_fn(first_block + COMPUTE_WARPGROUPS - 1, spec, t)
  return lo, jnp.maximum(lo, hi)
