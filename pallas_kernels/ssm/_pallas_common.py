"""Helpers shared by the SSM Pallas kernels: backend choice, compiler parameters, padding and float32 dots."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from pallas_kernels import _dispatch
from pallas_kernels._precision import kernel_dot_precision


def resolve_backend(backend: str | None) -> str:
  """Which kernel variant to build: "tpu" (Mosaic) or "gpu" (Triton). None: from jax.default_backend().

  On CPU (interpret mode) the default is the "gpu" variant; pass backend="tpu" to interpret the TPU one.
  """
  if backend is None:
    backend = "tpu" if jax.default_backend() == "tpu" else "gpu"
  if backend in ("cuda", "rocm"):
    backend = "gpu"
  if backend not in ("gpu", "tpu"):
    raise ValueError(f"backend must be 'gpu', 'tpu' or None; got {backend!r}")
  return backend


def compiler_params(backend: str, interpret: bool, n_grid_dims: int, num_warps: int = 4, num_stages: int = 1):
  """Compiler parameters for `pl.pallas_call`: Triton on GPU, Mosaic on TPU, none when interpreting."""
  if interpret:
    return None
  if backend == "tpu":
    return _dispatch.tpu_compiler_params(dimension_semantics=("parallel",) * n_grid_dims)
  return _dispatch.gpu_compiler_params(num_warps=num_warps, num_stages=num_stages)


def div_index(i, k: int):
  """i // k for non-negative grid indices in index maps. `lax.div`, not `//`: floor division lowers through
  sign(), whose Mosaic rule asks for the local TPU generation and so fails when cross-lowering from a CPU host."""
  return lax.div(i, k)


def next_pow2(n: int, minimum: int = 1) -> int:
  """Smallest power of two >= max(n, minimum)."""
  n = max(int(n), minimum)
  return 1 << (n - 1).bit_length()


def pad_axis(x, axis: int, size: int):
  """Zero-pads `x` along `axis` up to `size` (no-op when already that size)."""
  extra = size - x.shape[axis]
  if extra == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, extra)
  return jnp.pad(x, widths)


def matmul_dtype(backend: str, *dtypes):
  """Operand dtype of the in-kernel matmuls: bfloat16 on the GPU variant when every given input is bfloat16
  (one tensor-core pass, exact products, float32 accumulation), else float32."""
  if backend == "gpu" and all(jnp.dtype(d) == jnp.bfloat16 for d in dtypes):
    return jnp.dtype(jnp.bfloat16)
  return jnp.dtype(jnp.float32)


def dot_precision(backend: str, interpret: bool, operand_dtype=jnp.float32):
  """Matmul precision inside the kernels (`pallas_kernels._precision.kernel_dot_precision`)."""
  return kernel_dot_precision(operand_dtype, compiled_for_gpu=backend == "gpu" and not interpret)


def dot(a, b, contract_a: int, contract_b: int, precision, operand_dtype=None):
  """2-D matmul with a float32 result, contracting a's axis `contract_a` with b's axis `contract_b`;
  operand_dtype: cast both operands to it first (None: as they are)."""
  if operand_dtype is not None:
    a, b = a.astype(operand_dtype), b.astype(operand_dtype)
  return lax.dot_general(a, b, (((contract_a,), (contract_b,)), ((), ())), precision=precision,
                         preferred_element_type=jnp.float32)


def last_column_mask(q: int):
  """(q, 1) boolean: True only on the last row."""
  return lax.broadcasted_iota(jnp.int32, (q, 1), 0) == q - 1


def last_of_row(row):
  """(1, q) -> (1, 1): the last entry, by a masked sum (no value slicing, which Triton lacks)."""
  q = row.shape[1]
  mask = lax.broadcasted_iota(jnp.int32, (1, q), 1) == q - 1
  return jnp.sum(jnp.where(mask, row, 0.0), axis=1, keepdims=True)
