"""Per-backend tiling for the Pallas attention kernels: block sizes and (GPU) launch parameters of each kernel
(forward; backward as dk/dv and dq, or fused), which backward runs, the padded sequence and head dims, and the
backend-specific `pallas_call` arguments (interpret / Triton / Mosaic). The kernels' array layout and grid order
are in `layout.py`.

Backends: "gpu" (also "cuda"/"rocm"; Triton lowering), "tpu" (Mosaic), "interpret" (Pallas interpreter; it runs
the GPU variant's layout and grid order, so CPU tests cover the code the GPU runs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax

from pallas_kernels import _dispatch

KERNELS = ("forward", "dkdv", "dq", "fused")  # "fused": the one-kernel backward (dk, dv and dq; GPU only)
BACKWARD_KERNELS = {"split": ("dkdv", "dq"), "fused": ("fused",)}


@dataclasses.dataclass(frozen=True)
class KernelBlocks:
  """Block sizes of one kernel and, on GPU, its Triton launch parameters; None = the backend's default.

  block_q / block_k: rows of the query / key tiles. The forward and dq kernels hold one q block and loop over
  kv blocks of block_k; the dk/dv and fused backward kernels hold one kv block and loop over q blocks of block_q.
  """
  block_q: Optional[int] = None
  block_k: Optional[int] = None
  num_warps: Optional[int] = None
  num_stages: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Per-kernel `KernelBlocks` of the forward kernel and the backward kernels.

  backward: "split" runs two backward kernels (`dkdv`, then `dq`: each recomputes the scores); "fused" one
  kernel (`fused`) that computes dk and dv per kv block and adds each tile's dq into a float32 buffer with atomic
  adds (GPU and interpreter only: Mosaic TPU has no atomics); None, the backend's default (`default_backward`).
  The fused kernel does 5 matmuls per tile instead of 7, but its dq sums run in a nondeterministic order, and on an
  H200 its atomic adds made it slower than the split backward (experiments/bench/RESULTS.md, sixth session).
  """
  forward: KernelBlocks = KernelBlocks()
  dkdv: KernelBlocks = KernelBlocks()
  dq: KernelBlocks = KernelBlocks()
  fused: KernelBlocks = KernelBlocks()
  backward: Optional[str] = None

  @classmethod
  def for_kernel(cls, kernel: str, blocks: KernelBlocks) -> "BlockSizes":
    """`blocks` for `kernel`, the other kernels' defaults, and the backward that runs `kernel`."""
    return cls(**{kernel: blocks}, backward="fused" if kernel == "fused" else "split")


# Defaults. GPU, per kernel and head_dim bucket (the padded head_dim up to 64, up to 128, larger): (block_q,
# block_k, num_warps, num_stages). Hopper (sm_90) values are the fastest candidates of the block-size sweeps on an
# H200 (experiments/bench/attention_sweep.py, bf16, causal, seq 4096, checked at 8192; experiments/bench/RESULTS.md,
# "attention block sizes, chunk-parallel SSD backward" and the sixth and seventh sessions), with one exception: the
# head_dim 128 forward keeps the runner-up (128, 64, 8, 3), as the fastest, (128, 128, 8, 3), needs nearly all of
# the 227 KiB of shared memory an sm_90 block may have (triton_resources.py; RESULTS.md, "sm_90 resources without
# a GPU"), too close for a default that other Triton versions compile. The head_dim 64 dk/dv and dq entries are
# the earlier defaults (no candidate beat them). The fused backward's head_dim 128 entry is its fastest candidate
# (it is not the default backward; head_dim 64's is untimed).
# Older GPUs and ROCm (less shared memory) use the earlier small-block defaults; 4-byte inputs a float32 table.
# Blocks are clamped down to short sequences. TPU: (128, 128), kept even for short sequences (padded instead):
# Mosaic transposes and matmuls are safest on 128-aligned tiles. Interpreter: (64, 64), clamped to the lengths.
GPU_DEFAULTS = {
    64: {"forward": (128, 64, 4, 3), "dkdv": (64, 64, 4, 2), "dq": (64, 64, 4, 2), "fused": (64, 64, 4, 2)},
    128: {"forward": (128, 64, 8, 3), "dkdv": (64, 128, 8, 3), "dq": (64, 32, 4, 3), "fused": (64, 128, 8, 2)},
    None: {"forward": (32, 32, 8, 2), "dkdv": (32, 32, 8, 2), "dq": (32, 32, 8, 2), "fused": (32, 32, 8, 2)},
}
GPU_DEFAULTS_PRE_HOPPER = {
    64: {"forward": (64, 64, 4, 2), "dkdv": (64, 64, 4, 2), "dq": (64, 64, 4, 2), "fused": (64, 64, 4, 2)},
    128: {"forward": (64, 64, 8, 2), "dkdv": (64, 64, 8, 2), "dq": (64, 64, 8, 2), "fused": (64, 64, 8, 2)},
    None: GPU_DEFAULTS[None],
}
# 4-byte inputs (float32) on any GPU. Their dots run as 3-pass TF32 (`pallas_kernels._precision`), whose operand
# splits also live in shared memory. The 16-bit tables above overflow the 227 KiB an sm_90 block may have with
# 4-byte tiles (an H200 run failed on the head_dim 128 dk/dv). These fit an A100's 163 KiB per block (their
# shared memory and spills for sm_90: triton_resources.py --dtype float32; RESULTS.md, sixth session); GPUs with
# 99 KiB per block (sm_86, sm_89) need smaller `block_sizes` for some.
GPU_DEFAULTS_FLOAT32 = {
    64: GPU_DEFAULTS_PRE_HOPPER[64],
    128: {"forward": (64, 32, 4, 2), "dkdv": (32, 32, 4, 2), "dq": (32, 32, 4, 2), "fused": (32, 32, 4, 2)},
    None: {"forward": (16, 32, 4, 2), "dkdv": (32, 16, 4, 2), "dq": (16, 32, 4, 2), "fused": (16, 16, 4, 2)},
}
DEFAULT_BLOCKS = {"tpu": (128, 128), "interpret": (64, 64)}
# The backward per GPU head_dim bucket. "split": on an H200 the fused kernel's whole op ran slower, also with
# relaxed-order atomic adds, which Pallas cannot ask for (experiments/bench/RESULTS.md, sixth session).
GPU_DEFAULT_BACKWARD = {64: "split", 128: "split", None: "split"}


@functools.lru_cache(maxsize=None)
def gpu_compute_capability() -> str | None:
  """The first GPU's compute capability ("9.0"; a gfx name on ROCm), or None when this host has no GPU (as when
  cross-lowering for one)."""
  try:
    devices = jax.devices("gpu")
  except RuntimeError:
    return None
  return str(getattr(devices[0], "compute_capability", "")) or "unknown"


def gpu_capability_major() -> int | None:
  """The first GPU's compute capability major version (9 on Hopper), or None without a CUDA GPU here."""
  major = (gpu_compute_capability() or "").split(".")[0]
  return int(major) if major.isdigit() else None


def gpu_head_dim_pad(head_dim: int) -> int:
  """head_dim zero-padded for Triton, which needs power-of-two array sizes (zeros change no dot product)."""
  return max(16, _next_pow2(head_dim))


def head_dim_bucket(head_dim_pad: int) -> int | None:
  """The key of the per-head_dim GPU tables: 64 (up to 64), 128 (up to 128) or None (larger)."""
  return next((b for b in (64, 128) if head_dim_pad <= b), None)


def gpu_defaults(kernel: str, head_dim_pad: int, itemsize: int = 2) -> tuple[int, int, int, int]:
  """(block_q, block_k, num_warps, num_stages) of `kernel` on GPU for a padded head_dim and the inputs' bytes per
  element: the float32 table for 4-byte inputs; else the Hopper table on sm_90 and newer (and when there is no GPU
  here to ask), the small-block one on older GPUs."""
  cc, major = gpu_compute_capability(), gpu_capability_major()
  hopper = cc is None or (major is not None and major >= 9)
  table = GPU_DEFAULTS_FLOAT32 if itemsize >= 4 else GPU_DEFAULTS if hopper else GPU_DEFAULTS_PRE_HOPPER
  return table[head_dim_bucket(head_dim_pad)][kernel]


def default_backward(backend: str, head_dim_pad: int) -> str:
  """ "split" or "fused": the backward a call runs when `BlockSizes.backward` is None."""
  if backend != "gpu":
    return "split"
  return GPU_DEFAULT_BACKWARD[head_dim_bucket(head_dim_pad)]


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
  """The tilings of the kernels one attention call runs (same padded lengths, multiples of every block): the
  forward, and the backward's `dkdv` and `dq`, or `fused` alone (the others None)."""
  forward: Tiling
  dkdv: Optional[Tiling] = None
  dq: Optional[Tiling] = None
  fused: Optional[Tiling] = None

  @property
  def kernels(self) -> tuple[str, ...]:
    """The kernels the call runs, in launch order: ("forward", "dkdv", "dq") or ("forward", "fused")."""
    return tuple(name for name in KERNELS if getattr(self, name) is not None)


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


def _resolve(backend, kernel: str, blocks: KernelBlocks, q_len, kv_len, head_dim_pad, itemsize) -> KernelBlocks:
  """The kernel's blocks with defaults filled in (launch parameters only on GPU), checked."""
  if backend == "gpu":
    dq, dk, warps, stages = gpu_defaults(kernel, head_dim_pad, itemsize)
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
                 block_sizes: BlockSizes | None = None, causal=False, itemsize: int = 2) -> Tilings:
  """Chooses (or checks) the block sizes of the kernels one call runs for `backend` (the forward, and dk/dv and
  dq or the fused backward: `BlockSizes.backward`) and the common padded lengths.

  block_q / block_k set every kernel's blocks; `block_sizes` sets them per kernel (and, on GPU, the warps and
  pipeline stages) and takes precedence where it names a value. itemsize: bytes per input element (GPU defaults
  for 4-byte inputs are smaller, to fit shared memory).
  """
  backend = canonical_backend(backend)
  block_sizes = block_sizes or BlockSizes()
  if not isinstance(block_sizes, BlockSizes):
    raise ValueError(f"block_sizes must be a pallas_kernels.attention.BlockSizes or None; got {block_sizes!r}")
  head_dim_pad = gpu_head_dim_pad(head_dim) if backend == "gpu" else head_dim
  backward = block_sizes.backward or default_backward(backend, head_dim_pad)
  if backward not in BACKWARD_KERNELS:
    raise ValueError(f"BlockSizes.backward must be 'split', 'fused' or None; got {backward!r}")
  if backward == "fused" and backend == "tpu":
    raise ValueError("the fused backward (BlockSizes(backward='fused')) adds dq with atomics, which Mosaic TPU "
                     "does not have; use backward='split' or None on TPU")
  resolved = {}
  for name in ("forward",) + BACKWARD_KERNELS[backward]:
    given = getattr(block_sizes, name)
    given = dataclasses.replace(given, block_q=block_q if given.block_q is None else given.block_q,
                                block_k=block_k if given.block_k is None else given.block_k)
    resolved[name] = _resolve(backend, name, given, q_len, kv_len, head_dim_pad, itemsize)
  # Every kernel's blocks must tile the common padded lengths (TPU / interpreter blocks need not be powers of 2).
  q_pad = _round_up(q_len, math.lcm(*(r.block_q for r in resolved.values())))
  kv_pad = _round_up(kv_len, math.lcm(*(r.block_k for r in resolved.values())))
  return Tilings(**{name: Tiling(
      backend=backend, block_q=r.block_q, block_k=r.block_k, q_len=q_len, kv_len=kv_len, q_pad=q_pad,
      kv_pad=kv_pad, head_dim=head_dim, head_dim_pad=head_dim_pad, groups=groups, num_warps=r.num_warps,
      num_stages=r.num_stages, reverse_blocks=bool(causal) and backend != "tpu" and name in ("forward", "dq"))
      for name, r in resolved.items()})


def call_kwargs(t: Tiling, num_grid_dims: int) -> dict:
  """Backend-specific keyword arguments of `pl.pallas_call` (every grid dimension is parallel)."""
  if t.backend == "interpret":
    return {"interpret": True}
  if t.backend == "gpu":
    return {"compiler_params": _dispatch.gpu_compiler_params(num_warps=t.num_warps, num_stages=t.num_stages)}
  return {"compiler_params": _dispatch.tpu_compiler_params(dimension_semantics=("parallel",) * num_grid_dims)}
