"""Matmul precision inside the Pallas kernels: one policy for the attention and SSM kernels."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def kernel_dot_precision(operand_dtype, *, compiled_for_gpu: bool):
  """Precision of a kernel's matmul on `operand_dtype` tiles (float32 accumulation either way).

  16-bit operands: the default (one pass). float32 operands, float32-accurate everywhere: compiled for a GPU
  (Triton), the 3-pass TF32 algorithm, which runs on the tensor cores (Triton's IEEE float32 dot runs on the CUDA
  cores, spills registers and is slow to compile; plain TF32 is ~1e-3 off); HIGHEST on TPU and in the interpreter
  (which runs on the host's dot).
  """
  if jnp.dtype(operand_dtype) != jnp.float32:
    return lax.Precision.DEFAULT
  return lax.DotAlgorithmPreset.TF32_TF32_F32_X3 if compiled_for_gpu else lax.Precision.HIGHEST
