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

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.attention import _common, block_math
from pallas_kernels.attention.mosaic_blocks import (COMPUTE_REGISTERS, COMPUTE_WARPGROUPS, MEMORY_REGISTERS,
                                                    MEMORY_WARPGROUP)
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


def matmul(a, b, shape, acc=None, *, after_issue=None):
  """a @ b on the tensor cores (wgmma) into a float32 (rows, cols) `shape`, plus `acc` when given (accumulated in
  place). a: a shared-memory ref or a register array (wgmma layout); b: a shared-memory ref (use
  `plgpu.transpose_ref` for b.T). `after_issue` runs between issuing the matmul and waiting for its result."""

  def run(acc_ref):
    plgpu.wgmma(acc_ref, a, b)
    if after_issue is not None:
      after_issue()
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
  """`block_math.block_scores` for one float32 score tile in the wgmma layout: the row and key indices are full
  tiles (the hooks see them so), keys down the rows when `transposed` ((block_k, block_q) k.q products)."""
  q_axis, kv_axis = (1, 0) if transposed else (0, 1)

  def iota(axis):
    return plgpu.broadcasted_iota(jnp.int32, s_raw.shape, axis, layout=plgpu.Layout.WGMMA)

  return block_math.logits_and_keep(s_raw, q_start + iota(q_axis), kv_start + iota(kv_axis), head, spec, t,
                                    with_grad=with_grad, masked=masked)


def union_range(first_block, spec: _common.AttentionSpec, t: Tiling, range_fn):
  """[lo, hi) of the other side's blocks that either compute warpgroup's own block (first_block, first_block + 1)
  can see: `range_fn` is `block_math.kv_block_range` or `block_math.q_block_range` (both monotone in the block)."""
  lo, _ = range_fn(first_block, spec, t)
  _, hi = range_fn(first_block + COMPUTE_WARPGROUPS - 1, spec, t)
  return lo, jnp.maximum(lo, hi)


def stream(begin, end, stages: int, groups):
  """The memory warpgroup: for each step in [begin, end) (slot = (step - begin) % stages), and for each group
  (free, copies) in order, waits until both compute warpgroups have freed the slot (once it was used `stages` steps
  before), then TMA-copies each (source(step) -> slots[slot], signalling ready[slot]) of the group's copies."""
  plgpu.set_max_registers(MEMORY_REGISTERS, action="decrease")

  @pl.loop(begin, end)
  def _(step):
    slot = lax.rem(step - begin, jnp.int32(stages))
    for free, copies in groups:
      @pl.when(step - begin >= stages)
      def _():
        plgpu.barrier_wait(free.at[slot])
      for source, slots, ready in copies:
        plgpu.copy_gmem_to_smem(source(step), slots.at[slot], ready.at[slot])


def stream_kv(refs, slots, ready, free, *, batch, kv_head, lo, hi, block_k: int, stages: int):
  """The memory warpgroup of the forward and dq kernels: the k and v blocks [lo, hi) of one kv head (`refs`,
  `slots`, `ready`, `free`: (k, v) pairs), each waited for and signalled on its own barriers."""
  def rows(ref):
    return lambda kv_block: ref.at[batch, pl.ds(kv_block * block_k, block_k), kv_head]

  stream(lo, hi, stages, [(f, [(rows(ref), s, r)]) for ref, s, r, f in zip(refs, slots, ready, free)])


def load_own_rows(copies, ready, wg):
  """A compute warpgroup's own blocks: TMA-copies each (source ref -> its shared-memory buffer), barrier i of
  `ready[i]` (one per warpgroup), then waits for all of them."""
  for (source, destination), barriers in zip(copies, ready):
    plgpu.copy_gmem_to_smem(source, destination, barriers.at[wg])
  for barriers in ready:
    plgpu.barrier_wait(barriers.at[wg])


class QMajorProgram(NamedTuple):
  """Where a program of the forward or dq kernel is: ids, the union [lo, hi) of kv blocks its two compute
  warpgroups see, and (in a compute warpgroup) its own q block."""
  batch: jax.Array
  head: jax.Array
  wg: jax.Array
  lo: jax.Array
  hi: jax.Array
  q_block: jax.Array
  q_start: jax.Array


def q_major_program(spec: _common.AttentionSpec, t: Tiling, stages: int, kv_refs, kv_slots, kv_ready, kv_free):
  """The start the forward and dq kernels share (grid (heads, q_tile, batch)): runs the memory warpgroup, which
  streams the k and v blocks (`stream_kv`; the arguments are (k, v) pairs), and returns the `QMajorProgram` the
  caller's compute code (under `pl.when(program.wg < MEMORY_WARPGROUP)`, after `compute_warpgroup_registers`) uses."""
  batch, head, tile = lax.axis_index("batch"), lax.axis_index("heads"), lax.axis_index("q_tile")
  wg = lax.axis_index("wg")
  lo, hi = union_range(tile * COMPUTE_WARPGROUPS, spec, t, block_math.kv_block_range)

  @pl.when(wg == MEMORY_WARPGROUP)
  def _memory():
    stream_kv(kv_refs, kv_slots, kv_ready, kv_free, batch=batch, kv_head=lax.div(head, jnp.int32(t.groups)), lo=lo,
              hi=hi, block_k=t.block_k, stages=stages)

  q_block = tile * COMPUTE_WARPGROUPS + wg
  return QMajorProgram(batch, head, wg, lo, hi, q_block, q_block * t.block_q)


def compute_warpgroup_registers():
  plgpu.set_max_registers(COMPUTE_REGISTERS, action="increase")


def launch_q_major(kernel, *, out_type, own_scratch, t: Tiling, stages: int, heads: int, batch: int, kv_dtypes,
                   dim: int):
  """Builds the forward or dq kernel: grid (heads, q_tile, batch), three warpgroups, scratch = `own_scratch` (the
  compute warpgroups' own blocks and barriers) then the k/v ring: k slots, v slots, their ready barriers and their
  free barriers (two arrivals). `kernel` takes the inputs, outputs and scratch in that order."""
  wgs = COMPUTE_WARPGROUPS
  ring = [smem((stages, t.block_k, dim), dtype) for dtype in kv_dtypes]
  ring += [plgpu.Barrier(num_barriers=stages)] * 2 + [plgpu.Barrier(num_arrivals=wgs, num_barriers=stages)] * 2
  return plgpu.kernel(kernel, out_type=out_type, scratch_types=[*own_scratch, *ring],
                      grid=(heads, t.q_pad // (wgs * t.block_q), batch), grid_names=("heads", "q_tile", "batch"),
                      num_threads=wgs + 1, thread_name="wg", compiler_params=compiler_params())
