"""The Pallas attention kernels' array layout and launch grid: how q/k/v/out (and their gradients) are laid out
and padded for the kernels, BlockSpecs of one head's (or a head group's) rows, and the grid order per backend."""

from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels.attention.tiling import Tiling


def squeezed_dim():
  """Block-shape entry for a squeezed (size-1, dropped) dimension.

  Version-specific: jax >= 0.7 spells it `pl.squeezed`; older versions used `None` (kept as fallback).
  """
  return getattr(pl, "squeezed", None)


# Layout of q/k/v/out and their gradients inside the kernels. GPU (and the interpreter): the caller's
# (B, S, H, D) itself, zero padded only where a length is not a multiple of the blocks (or head_dim not a power
# of two), so aligned inputs reach the kernels without a copy. TPU: head-major (B, H, S, D), since a Mosaic
# block's last two dims must be (8, 128)-aligned or whole, which a (block, 1 head, D) slice of (S, H, D) is not.

def head_major(t: Tiling) -> bool:
  return t.backend == "tpu"


def to_kernel_layout(x, t: Tiling, seq_pad: int):
  """(B, S, H, D) -> the kernels' zero-padded layout: (B, H, seq_pad, D_pad) on TPU, else (B, seq_pad, H, D_pad)."""
  pad = ((0, 0), (0, seq_pad - x.shape[1]), (0, 0), (0, t.head_dim_pad - x.shape[3]))
  if any(p for _, p in pad):
    x = jnp.pad(x, pad)
  return jnp.swapaxes(x, 1, 2) if head_major(t) else x


def from_kernel_layout(x, t: Tiling, seq_len: int):
  """The kernels' layout -> (B, seq_len, H, head_dim)."""
  if head_major(t):
    x = jnp.swapaxes(x, 1, 2)
  if x.shape[1] != seq_len or x.shape[3] != t.head_dim:
    x = x[:, :seq_len, :, :t.head_dim]
  return x


def head_block_spec(t: Tiling, rows: int, index_map, heads: int | None = None):
  """BlockSpec of `rows` sequence positions x D_pad of one head, or of `heads` consecutive heads (then a block
  axis of the kernel's view: see `group_rows`), in the kernel layout. index_map(*grid) -> (batch, head or
  head-group, sequence block)."""
  head = squeezed_dim() if heads is None else heads
  if head_major(t):
    return pl.BlockSpec((squeezed_dim(), head, rows, t.head_dim_pad), lambda *g: (*index_map(*g), 0))

  def seq_major(*g):
    b, h, i = index_map(*g)
    return b, i, h, 0

  return pl.BlockSpec((squeezed_dim(), rows, head, t.head_dim_pad), seq_major)


def group_index(t: Tiling, g, rows):
  """Index of the (rows, D) slice of head g in a multi-head block (`head_block_spec(..., heads=G)`)."""
  return (g, rows, slice(None)) if head_major(t) else (rows, g, slice(None))


def group_rows(ref, t: Tiling, g, rows):
  """The (rows, D) slice of head g of a multi-head block."""
  return ref[group_index(t, g, rows)]


# Grid order. Every kernel's grid is (batch, heads, blocks) in meaning. On GPU the block axis comes first:
# Pallas-Triton launches grid axis 0 as CUDA's x, the fastest-varying, so the programs running at once share a
# few heads' k/v (kept in L2) instead of touching every head. On TPU the grid runs sequentially, last axis
# fastest: blocks last keep a head's k/v block resident across consecutive programs (Pallas skips the copy).

def launch_grid(t: Tiling, batch: int, heads: int, num_blocks: int) -> tuple[int, int, int]:
  return (batch, heads, num_blocks) if t.backend == "tpu" else (num_blocks, heads, batch)


def _block_index(t: Tiling, grid_index, num_blocks: int):
  return num_blocks - 1 - grid_index if t.reverse_blocks else grid_index


def grid_index_map(t: Tiling, num_blocks: int, index_map):
  """Wraps index_map(batch, head, block) into a BlockSpec index map over `launch_grid`'s axes."""
  if t.backend == "tpu":
    return lambda b, h, i: index_map(b, h, _block_index(t, i, num_blocks))
  return lambda i, h, b: index_map(b, h, _block_index(t, i, num_blocks))


def program_ids(t: Tiling, num_blocks: int):
  """(batch, head, block) of the running program (int32 scalars), inside a kernel launched on `launch_grid`."""
  if t.backend == "tpu":
    b, h, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  else:
    i, h, b = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  return b, h, _block_index(t, i, num_blocks)
