"""Tests for `pallas_kernels.triton_inspect`: Pallas-Triton kernels compiled for sm_90 on this CPU host with the
installed triton, and their resource usage read back."""

import functools

import jax
import jax.numpy as jnp
import pytest
from jax.experimental import pallas as pl

from pallas_kernels import _dispatch, triton_inspect
from pallas_kernels.attention import flash_attention

pytest.importorskip("triton")


def _add_one(x):
  def kernel(x_ref, o_ref):
    o_ref[...] = x_ref[...] + 1.0
  return pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
                        compiler_params=_dispatch.gpu_compiler_params(num_warps=4, num_stages=1))(x)


def test_an_elementwise_kernel_compiles_without_matmuls():
  modules = triton_inspect.triton_modules(_add_one, (jax.ShapeDtypeStruct((32, 64), jnp.float32),))
  assert len(modules) == 1 and "tt.func" in modules[0]
  usage = triton_inspect.resources(triton_inspect.compile_module(modules[0], num_warps=4, num_stages=1))
  assert not usage.wgmma
  assert usage.registers is None or 0 < usage.registers <= 255
  assert usage.stack_bytes in (None, 0)


def test_more_pipeline_stages_take_more_shared_memory():
  """The attention forward kernel (bf16, head_dim 64) issues wgmma on sm_90, and each extra pipeline stage of its
  k/v loads costs shared memory."""
  q = jax.ShapeDtypeStruct((1, 256, 2, 64), jnp.bfloat16)
  attend = functools.partial(flash_attention, impl="pallas", _backend="gpu")
  [module] = triton_inspect.triton_modules(attend, (q, q, q))
  two, three = (triton_inspect.resources(triton_inspect.compile_module(module, num_warps=4, num_stages=s))
                for s in (2, 3))
  assert two.wgmma and three.wgmma
  assert three.shared_bytes > two.shared_bytes > 0
