"""Per-backend tiling for the Pallas attention kernels: block sizes and (GPU) launch parameters of each of the
three kernels (forward, dk/dv, dq), padding of sequence and head dims, the launch grid's order, and the
backend-specific `pallas_call` arguments (interpret / Triton / Mosaic).

Backends: "gpu" (also "cuda"/"rocm"; Triton lowering), "tpu" (Mosaic), "interpret" (Pallas interpreter; it runs
the GPU variant's grid order and blocks checks, so CPU tests cover the code the GPU runs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import _dispatch

KERNELS = ("forward", "dkdv", "dq")


@dataclasses.dataclass(frozen=True)
class KernelBlocks:
  """Block sizes of one kernel and, on GPU, its Triton launch parameters; None = the backend's default.

  block_q / block_k: rows of the query / key tiles. The forward and dq kernels hold one q block and loop over
  kv blocks of block_k; the dk/dv kernel holds one kv block and loops over q blocks of block_q.
  """
  block_q: Optional[int] = None
  block_k: Optional[int] = None
  num_warps: Optional[int] = None
  num_stages: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Per-kernel `KernelBlocks` of the forward kernel and the two backward kernels."""
  forward: KernelBlocks = KernelBlocks()
  dkdv: KernelBlocks = KernelBlocks()
  dq: KernelBlocks = KernelBlocks()


# Defaults. GPU, per kernel and head_dim bucket (the padded head_dim up to 64, up to 128, larger): (block_q,
# block_k, num_warps, num_stages). Hopper (sm_90) values are the fastest of the block-size sweep on an H200
# (experiments/bench/attention_sweep.py, bf16, seq 4096, causal; RESULTS.md): head_dim 128 forward 0.61-0.64 ms
# against 0.95-0.98 ms for the earlier (64, 64, 8, 2), dk/dv 0.81-0.92 vs 1.48-1.51 ms, dq 0.77-0.79 vs
# 1.37-1.46 ms; head_dim 64 forward 0.47 vs 0.57 ms, dk/dv and dq kept (no candidate beat them). Older GPUs and
# ROCm (less shared memory: a 128 x 128 x 128 bf16 k/v pipeline of 3 stages needs ~200 KiB) use the earlier
# small-block defaults. Blocks are clamped down to short sequences. TPU: (128, 128), kept even for short
# sequences (padded instead): Mosaic transposes and matmuls are safest on 128-aligned tiles. Interpreter:
# (64, 64), clamped to the lengths.
GPU_DEFAULTS = {
    64: {"forward": (128, 64, 4, 3), "dkdv": (64, 64, 4, 2), "dq": (64, 64, 4, 2)},
    128: {"forward": (128, 128, 8, 3), "dkdv": (64, 128, 8, 2), "dq": (128, 32, 4, 3)},
    None: {"forward": (32, 32, 8, 2), "dkdv": (32, 32, 8, 2), "dq": (32, 32, 8, 2)},
}
GPU_DEFAULTS_PRE_HOPPER = {
    64: {"forward": (64, 64, 4, 2), "dkdv": (64, 64, 4, 2), "dq": (64, 64, 4, 2)},
    128: {"forward": (64, 64, 8, 2), "dkdv": (64, 64, 8, 2), "dq": (64, 64, 8, 2)},
    None: GPU_DEFAULTS[None],
}
DEFAULT_BLOCKS = {"tpu": (128, 128), "interpret": (64, 64)}


@functools.lru_cache(maxsize=None)
def gpu_compute_capability() -> str | None:
  """The first GPU's compute capability ("9.0"; a gfx name on ROCm), or None when this host has no GPU (as when
  cross-lowering for one)."""
  try:
    devices = jax.devices("gpu")
  except RuntimeError:
    return None
  return str(getattr(devices[0], "compute_capability", "")) or "unknown"


def gpu_defaults(kernel: str, head_dim_pad: int) -> tuple[int, int, int, int]:
  """(block_q, block_k, num_warps, num_stages) of `kernel` on GPU for a padded head_dim: the Hopper table on
  sm_90 and newer (and when there is no GPU here to ask), else the small-block one."""
  cc = gpu_compute_capability()
  major = cc.split(".")[0] if cc else None
  hopper = cc is None or (major.isdigit() and int(major) >= 9)
  bucket = next((b for b in (64, 128) if head_dim_pad <= b), None)
  return (GPU_DEFAULTS if hopper else GPU_DEFAULTS_PRE_HOPPER)[bucket][kernel]


def squeezed_dim():
  """Block-shape entry for a squeezed (size-1, dropped) dimension.

  Version-specific: jax >= 0.7 spells it `pl.squeezed`; older versions used `None` (kept as fallback).
  """
  return getattr(pl, "squeezed", None)


def canonical_backend(backend: str) -> str:
  """Maps jax backend / platform names onto "gpu", "tpu" or "interpret"."""
  if backend in ("gpu", "cuda", "rocm"):
    return "gpu"
  if backend in ("tpu", "interpret"):
    return backend
  raise ValueError(f"the Pallas attention kernel has no lowering for backend {backend!r}; use impl='xla' "
                   "or impl='pallas_interpret' there")


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _next_pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Tiling:
  """Static shapes of one kernel launch. Padded lengths are multiples of the block sizes.

  reverse_blocks: the grid's block axis runs last block first (GPU, causal forward / dq: the last q blocks see
  the most keys, so starting them first shortens the tail of the launch).
  """
  backend: str
  block_q: int
  block_k: int
  q_len: int
  kv_len: int
  q_pad: int
  kv_pad: int
  head_dim: int
  head_dim_pad: int
  groups: int
  num_warps: Optional[int] = None
  num_stages: Optional[int] = None
  reverse_blocks: bool = False

  @property
  def num_q_blocks(self) -> int:
    return self.q_pad // self.block_q

  @property
  def num_kv_blocks(self) -> int:
    return self.kv_pad // self.block_k


@dataclasses.dataclass(frozen=True)
class Tilings:
  """The tilings of the three kernels of one attention call (same padded lengths, multiples of every block)."""
  forward: Tiling
  dkdv: Tiling
  dq: Tiling


def _check_block(name: str, block, backend: str) -> None:
  if int(block) != block or block < 1:
    raise ValueError(f"{name} must be a positive int; got {block!r}")
  if backend == "gpu" and (block < 16 or block & (block - 1)):
    raise ValueError(f"on GPU (Triton) {name} must be a power of two >= 16; got {block}")
  if backend == "tpu" and block % 8:
    raise ValueError(f"on TPU {name} must be a multiple of 8 (128 recommended); got {block}")


def _check_launch(name: str, value, allowed) -> None:
  if value is not None and value not in allowed:
    raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))} or None; got {value!r}")


def _clamp_block(backend: str, block: int, length: int) -> int:
  if backend == "tpu":
    return block
  if backend == "gpu":
    return min(block, max(16, _next_pow2(length)))
  return min(block, _round_up(length, 8))


def _resolve(backend, kernel: str, blocks: KernelBlocks, q_len, kv_len, head_dim_pad) -> KernelBlocks:
  """The kernel's blocks with defaults filled in (launch parameters only on GPU), checked."""
  if backend == "gpu":
    dq, dk, warps, stages = gpu_defaults(kernel, head_dim_pad)
  else:
    (dq, dk), warps, stages = DEFAULT_BLOCKS[backend], None, None
  block_q = _clamp_block(backend, dq, q_len) if blocks.block_q is None else blocks.block_q
  block_k = _clamp_block(backend, dk, kv_len) if blocks.block_k is None else blocks.block_k
  _check_block("block_q", block_q, backend)
  _check_block("block_k", block_k, backend)
  _check_launch("num_warps", blocks.num_warps, (1, 2, 4, 8, 16))
  _check_launch("num_stages", blocks.num_stages, tuple(range(1, 9)))
  return KernelBlocks(int(block_q), int(block_k), blocks.num_warps or warps, blocks.num_stages or stages)


def make_tilings(backend, *, q_len, kv_len, head_dim, groups, block_q=None, block_k=None,
                 block_sizes: BlockSizes | None = None, causal=False) -> Tilings:
  """Chooses (or checks) the block sizes of the three kernels for `backend` and the common padded lengths.

  block_q / block_k set every kernel's blocks; `block_sizes` sets them per kernel (and, on GPU, the warps and
  pipeline stages) and takes precedence where it names a value.
  """
  backend = canonical_backend(backend)
  block_sizes = block_sizes or BlockSizes()
  if not isinstance(block_sizes, BlockSizes):
    raise ValueError(f"block_sizes must be a pallas_kernels.attention.BlockSizes or None; got {block_sizes!r}")
  # Triton needs power-of-two array sizes: zero-pad head_dim (zeros change no dot product).
  head_dim_pad = max(16, _next_pow2(head_dim)) if backend == "gpu" else head_dim
  resolved = {}
  for name in KERNELS:
    given = getattr(block_sizes, name)
    given = dataclasses.replace(given, block_q=block_q if given.block_q is None else given.block_q,
                                block_k=block_k if given.block_k is None else given.block_k)
    resolved[name] = _resolve(backend, name, given, q_len, kv_len, head_dim_pad)
  # Every kernel's blocks must tile the common padded lengths (TPU / interpreter blocks need not be powers of 2).
  q_pad = _round_up(q_len, math.lcm(*(r.block_q for r in resolved.values())))
  kv_pad = _round_up(kv_len, math.lcm(*(r.block_k for r in resolved.values())))
  return Tilings(**{name: Tiling(
      backend=backend, block_q=r.block_q, block_k=r.block_k, q_len=q_len, kv_len=kv_len, q_pad=q_pad,
      kv_pad=kv_pad, head_dim=head_dim, head_dim_pad=head_dim_pad, groups=groups, num_warps=r.num_warps,
      num_stages=r.num_stages, reverse_blocks=bool(causal) and backend != "tpu" and name != "dkdv")
      for name, r in resolved.items()})


def make_tiling(backend, *, q_len, kv_len, head_dim, groups, block_q=None, block_k=None) -> Tiling:
  """The forward kernel's tiling (block sizes chosen or checked for `backend`)."""
  return make_tilings(backend, q_len=q_len, kv_len=kv_len, head_dim=head_dim, groups=groups, block_q=block_q,
                      block_k=block_k).forward


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


def group_rows(ref, t: Tiling, g, rows):
  """The (rows, D) slice of head g of a multi-head block (`head_block_spec(..., heads=G)`)."""
  return ref[g, rows, :] if head_major(t) else ref[rows, g, :]


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


def call_kwargs(t: Tiling, num_grid_dims: int) -> dict:
  """Backend-specific keyword arguments of `pl.pallas_call` (every grid dimension is parallel)."""
  if t.backend == "interpret":
    return {"interpret": True}
  if t.backend == "gpu":
    return {"compiler_params": _dispatch.gpu_compiler_params(num_warps=t.num_warps, num_stages=t.num_stages)}
  return {"compiler_params": _dispatch.tpu_compiler_params(dimension_semantics=("parallel",) * num_grid_dims)}
