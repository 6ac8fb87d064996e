"""What `impl="mosaic"` (the Hopper attention kernels in Pallas Mosaic GPU) accepts, its block sizes and padding,
and how its warpgroups are split. Imports no Pallas module, so `pallas_kernels` stays light to import; the in-kernel
helpers are in `mosaic_common`."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from pallas_kernels.attention.tiling import Tiling

COMPUTE_WARPGROUPS = 2
MEMORY_WARPGROUP = COMPUTE_WARPGROUPS  # the thread index of the memory warpgroup
# Registers per thread (sm_90: 64 Ki per SM, here 128 threads per warpgroup): the compute warpgroups hold the
# accumulators, the memory warpgroup only issues copies. 2 * 232 + 40 = 504 <= 512.
COMPUTE_REGISTERS = 232
MEMORY_REGISTERS = 40
SUPPORTED_DTYPES = (jnp.float16, jnp.bfloat16)
SUPPORTED_HEAD_DIMS = (64, 128)  # head_dim is zero-padded up to one of these
SHARED_MEMORY_BYTES = 227 * 1024  # what one sm_90 thread block may use


@dataclasses.dataclass(frozen=True)
class MosaicBlocks:
  """Block sizes of the Mosaic GPU kernels (rows per compute warpgroup; wgmma needs 64-row multiples where a block is
  a warpgroup's own rows), the depth of the shared-memory ring (`stages` >= 2), and the forward kernel's schedule.

  forward_q x forward_kv: the forward kernel; dq_q x dq_kv: the dq kernel; dkdv_kv x dkdv_q: the dk/dv kernel.
  pingpong: the forward's two compute warpgroups take turns (FlashAttention-3's ping-pong: one's softmax runs while
  the other's matmuls hold the tensor cores), through a barrier both arrive at twice per kv block. On by default
  as in jax's own Mosaic GPU attention example (1.12x cuDNN forward on an H200, RESULTS.md); not yet measured here.
  """
  forward_q: int = 64
  forward_kv: int = 128
  dq_q: int = 64
  dq_kv: int = 64
  dkdv_kv: int = 64
  dkdv_q: int = 64
  stages: int = 2
  pingpong: bool = True

  def check(self) -> None:
    for name in ("forward_q", "dq_q", "dkdv_kv"):
      value = getattr(self, name)
      if value not in (64, 128):
        raise ValueError(f"MosaicBlocks.{name} must be 64 or 128 (a warpgroup's wgmma rows); got {value}")
    for name in ("forward_kv", "dq_kv", "dkdv_q"):
      value = getattr(self, name)
      if value not in (64, 128, 256):
        raise ValueError(f"MosaicBlocks.{name} must be 64, 128 or 256; got {value}")
    if not 2 <= self.stages <= 4:
      raise ValueError(f"MosaicBlocks.stages must be 2, 3 or 4; got {self.stages}")
    if not isinstance(self.pingpong, bool):
      raise ValueError(f"MosaicBlocks.pingpong must be True or False; got {self.pingpong!r}")

  @property
  def q_multiple(self) -> int:
    """What q_len is padded to a multiple of: every kernel's q-side block (two warpgroups' worth where they own it)."""
    return max(COMPUTE_WARPGROUPS * self.forward_q, COMPUTE_WARPGROUPS * self.dq_q, self.dkdv_q)

  @property
  def kv_multiple(self) -> int:
    return max(self.forward_kv, self.dq_kv, COMPUTE_WARPGROUPS * self.dkdv_kv)


def shared_memory_bytes(blocks: MosaicBlocks, head_dim_pad: int, itemsize: int) -> dict[str, int]:
  """Shared memory each kernel allocates, counted as Mosaic GPU lays it out: each scratch buffer starts on a 1 KiB
  boundary, then 8 bytes per barrier, and the forward kernel's row reductions take a 2 KiB scratch (checked
  against Mosaic GPU's own count in mosaic_attention_test.py)."""
  wgs, stages, row = COMPUTE_WARPGROUPS, blocks.stages, head_dim_pad * itemsize

  def total(buffers, barriers, reduction=0):
    return sum(_round_up(size, 1024) for size in buffers) + 8 * barriers + reduction

  return {
      "forward": total([wgs * blocks.forward_q * row, 2 * stages * blocks.forward_kv * row, wgs * blocks.forward_q * 4],
                       wgs + 4 * stages + 1, reduction=2048),
      "dq": total([2 * wgs * blocks.dq_q * row, 2 * wgs * blocks.dq_q * 4, 2 * stages * blocks.dq_kv * row],
                  4 * wgs + 4 * stages),
      "dkdv": total([2 * wgs * blocks.dkdv_kv * row, 2 * stages * blocks.dkdv_q * row, 2 * stages * blocks.dkdv_q * 4],
                    2 * wgs + 5 * stages),
  }


def check_shared_memory(blocks: MosaicBlocks, head_dim_pad: int, itemsize: int) -> None:
  """ValueError naming the kernels whose buffers do not fit an sm_90 block's shared memory."""
  over = {name: size for name, size in shared_memory_bytes(blocks, head_dim_pad, itemsize).items()
          if size > SHARED_MEMORY_BYTES}
  if over:
    listed = ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in over.items())
    raise ValueError(f"MosaicBlocks need more shared memory than a Hopper block has ({SHARED_MEMORY_BYTES // 1024} "
                     f"KiB) at head_dim {head_dim_pad}: {listed}; use fewer stages or smaller blocks")


def check_mosaic_inputs(q, k, v) -> None:
  """ValueError naming what impl="mosaic" cannot take: other dtypes than float16 / bfloat16, head_dim > 128."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if jnp.dtype(x.dtype) not in [jnp.dtype(d) for d in SUPPORTED_DTYPES]:
      raise ValueError(f"impl='mosaic' takes float16 or bfloat16 inputs (Hopper tensor-core matmuls); {name} is "
                       f"{x.dtype}: cast it, or use impl='pallas'")
  if q.shape[-1] > max(SUPPORTED_HEAD_DIMS):
    raise ValueError(f"impl='mosaic' takes head_dim <= {max(SUPPORTED_HEAD_DIMS)}; got {q.shape[-1]}: use "
                     "impl='pallas'")


def head_dim_pad(head_dim: int) -> int:
  return next(d for d in SUPPORTED_HEAD_DIMS if d >= head_dim)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def make_tiling(*, block_q: int, block_k: int, q_len: int, kv_len: int, head_dim: int, groups: int,
                blocks: MosaicBlocks) -> Tiling:
  """The `Tiling` of one Mosaic kernel (block_q / block_k: one warpgroup's or one ring slot's rows), with the padded
  lengths shared by all three kernels, so `block_math`'s range helpers apply unchanged."""
  return Tiling(backend="mosaic", block_q=block_q, block_k=block_k, q_len=q_len, kv_len=kv_len,
                q_pad=_round_up(q_len, blocks.q_multiple), kv_pad=_round_up(kv_len, blocks.kv_multiple),
                head_dim=head_dim, head_dim_pad=head_dim_pad(head_dim), groups=groups)
