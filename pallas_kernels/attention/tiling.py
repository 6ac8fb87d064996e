"""Per-backend tiling for the Pallas attention kernels: default and checked block sizes, padding of
sequence and head dims, and the backend-specific `pallas_call` arguments (interpret / Triton / Mosaic).

Backends: "gpu" (also "cuda"/"rocm"; Triton lowering), "tpu" (Mosaic), "interpret" (Pallas interpreter).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax.experimental import pallas as pl

from pallas_kernels import _dispatch

# Default (block_q, block_k) before clamping to the (rounded-up) sequence lengths.
DEFAULT_BLOCKS = {"gpu": (64, 64), "tpu": (128, 128), "interpret": (64, 64)}
# TPU keeps 128 (lane width) even for short sequences and pads them instead: Mosaic transposes and
# matmuls are safest on 128-aligned tiles.


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
  """Static shapes of one kernel launch. Padded lengths are multiples of the block sizes."""
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

  @property
  def num_q_blocks(self) -> int:
    return self.q_pad // self.block_q

  @property
  def num_kv_blocks(self) -> int:
    return self.kv_pad // self.block_k


def _check_block(name: str, block: int, backend: str) -> None:
  if int(block) != block or block < 1:
    raise ValueError(f"{name} must be a positive int; got {block!r}")
  if backend == "gpu" and (block < 16 or block & (block - 1)):
    raise ValueError(f"on GPU (Triton) {name} must be a power of two >= 16; got {block}")
  if backend == "tpu" and block % 8:
    raise ValueError(f"on TPU {name} must be a multiple of 8 (128 recommended); got {block}")


def _default_block(backend: str, default: int, length: int) -> int:
  if backend == "gpu":
    return min(default, max(16, _next_pow2(length)))
  return min(default, _round_up(length, 8))


def make_tiling(backend, *, q_len, kv_len, head_dim, groups, block_q=None, block_k=None) -> Tiling:
  """Chooses (or checks) block sizes for `backend` and the padded lengths."""
  backend = canonical_backend(backend)
  dq, dk = DEFAULT_BLOCKS[backend]
  if backend == "gpu" and head_dim > 128:
    dq, dk = 32, 32
  if block_q is None:
    block_q = dq if backend == "tpu" else _default_block(backend, dq, q_len)
  if block_k is None:
    block_k = dk if backend == "tpu" else _default_block(backend, dk, kv_len)
  _check_block("block_q", block_q, backend)
  _check_block("block_k", block_k, backend)
  # Triton needs power-of-two array sizes: zero-pad head_dim (zeros change no dot product).
  head_dim_pad = max(16, _next_pow2(head_dim)) if backend == "gpu" else head_dim
  return Tiling(backend=backend, block_q=int(block_q), block_k=int(block_k), q_len=q_len, kv_len=kv_len,
                q_pad=_round_up(q_len, block_q), kv_pad=_round_up(kv_len, block_k), head_dim=head_dim,
                head_dim_pad=head_dim_pad, groups=groups)


def to_kernel_layout(x, seq_pad: int, dim_pad: int):
  """(B, S, H, D) -> zero-padded (B, H, seq_pad, dim_pad)."""
  x = jnp.swapaxes(x, 1, 2)
  return jnp.pad(x, ((0, 0), (0, 0), (0, seq_pad - x.shape[2]), (0, dim_pad - x.shape[3])))


def from_kernel_layout(x, seq_len: int, dim: int):
  """(B, H, seq_pad, dim_pad) -> (B, seq_len, H, dim)."""
  return jnp.swapaxes(x[:, :, :seq_len, :dim], 1, 2)


def call_kwargs(tiling: Tiling, num_grid_dims: int) -> dict:
  """Backend-specific keyword arguments of `pl.pallas_call` (every grid dimension is parallel)."""
  if tiling.backend == "interpret":
    return {"interpret": True}
  if tiling.backend == "gpu":
    num_warps = 4 if tiling.head_dim_pad <= 64 else 8
    return {"compiler_params": _dispatch.gpu_compiler_params(num_warps=num_warps, num_stages=2)}
  return {"compiler_params": _dispatch.tpu_compiler_params(dimension_semantics=("parallel",) * num_grid_dims)}
