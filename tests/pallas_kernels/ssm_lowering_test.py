"""Cross-lowering of the SSM kernels from this CPU host: the impl="pallas" forward and backward kernels
lower for "cuda" (Pallas -> Triton) and "tpu" (Pallas -> Mosaic) through `jax.export`, and where `triton` is
installed the raw Triton forward kernels (selective scan, SSD in bf16 and float32) compile for sm_90 without a GPU.

Lowering checks the JAX side (block shapes, supported primitives); the device compilers (ptxas for Pallas,
libtpu's Mosaic) run only on the real hardware.
"""

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels.ssm.selective_scan_pallas import selective_scan_pallas
from pallas_kernels.ssm.ssd_pallas import ssd_pallas
from pallas_kernels.triton_inspect import compile_module, export_text, triton_modules

_CUSTOM_CALL = {"cuda": "__gpu$xla.gpu.triton", "tpu": "tpu_custom_call"}
_VARIANT = {"cuda": "gpu", "tpu": "tpu"}
# Pallas kernels in the gradient of each loss: the SSD forward and its two backward kernels (the sequential
# state-cotangent sweep, then the chunk-parallel one); the selective scan's forward and backward.
_KERNELS = {"ssd": 3, "selective_scan": 2}


def _ssd_loss(backend, x, dt, A, B, C, s0, chunk_size=16):
  y, final = ssd_pallas(x, dt, A, B, C, initial_state=s0, chunk_size=chunk_size, return_final_state=True,
                        backend=backend)
  return jnp.sum(y.astype(jnp.float32)) + jnp.sum(final)


def _scan_loss(backend, u, dl, A, B, C, s0):
  y, final = selective_scan_pallas(u, dl, A, B, C, initial_state=s0, return_final_state=True, backend=backend)
  return jnp.sum(y.astype(jnp.float32)) + jnp.sum(final)


def _shapes(kind, dtype):
  sds = jax.ShapeDtypeStruct
  f32 = jnp.float32
  if kind == "ssd":  # batch 1, seq 40 (ragged), 4 heads, head_dim 8, 2 groups, d_state 8
    return [sds((1, 40, 4, 8), dtype), sds((1, 40, 4), f32), sds((4,), f32), sds((1, 40, 2, 8), dtype),
            sds((1, 40, 2, 8), dtype), sds((1, 4, 8, 8), f32)]
  return [sds((1, 40, 8), dtype), sds((1, 40, 8), f32), sds((8, 8), f32), sds((1, 40, 2, 8), dtype),
          sds((1, 40, 2, 8), dtype), sds((1, 8, 8), f32)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("platform", ["cuda", "tpu"], ids=["to_cuda", "to_mosaic"])
@pytest.mark.parametrize("kind", ["ssd", "selective_scan"])
def test_forward_and_backward_kernels_lower(kind, platform, dtype):
  loss = _ssd_loss if kind == "ssd" else _scan_loss
  grad = jax.grad(lambda *a: loss(_VARIANT[platform], *a), argnums=tuple(range(6)))
  text = export_text(grad, _shapes(kind, dtype), platform)
  assert text.count(_CUSTOM_CALL[platform]) == _KERNELS[kind], f"expected {_KERNELS[kind]} kernels"


def test_ssd_chunk_off_the_tpu_tile_lowers_for_tpu():
  """A chunk of 12 is rounded up to 16 on the TPU variant: the backward chunk kernel's (chunk, ...) blocks
  must be multiples of 8 rows."""
  grad = jax.grad(lambda *a: _ssd_loss("tpu", *a, chunk_size=12), argnums=tuple(range(6)))
  assert export_text(grad, _shapes("ssd", jnp.float32), "tpu").count(_CUSTOM_CALL["tpu"]) == _KERNELS["ssd"]


# kernel name -> (constexprs, pointer types by argument name, "*fp32" where not named)
_RAW_KERNELS = {
    "selective_scan_fwd_kernel": (dict(SEQ=40, DIM=48, GROUPS=2, NSTATE=16, BLOCK_D=32, BLOCK_N=16), {}),
    "ssd_fwd_kernel_bf16": (dict(HEADS=4, GROUPS=2, SEQ=128, HEAD_DIM=64, NSTATE=64, CHUNK=64, BLOCK_P=32,
                                 BF16=True), dict(x_ptr="*bf16", y_ptr="*bf16", b_ptr="*bf16", c_ptr="*bf16")),
    "ssd_fwd_kernel_f32": (dict(HEADS=4, GROUPS=2, SEQ=128, HEAD_DIM=64, NSTATE=64, CHUNK=64, BLOCK_P=32,
                                BF16=False), {}),
}


@pytest.mark.parametrize("name", _RAW_KERNELS)
def test_raw_triton_kernel_compiles_for_sm90(name):
  """The raw Triton kernels compile for sm_90 (PTX and cubin); the bf16 SSD sweep issues Hopper wgmma."""
  triton = pytest.importorskip("triton")
  from triton.backends.compiler import GPUTarget

  from pallas_kernels.ssm import _triton_kernels

  fn = getattr(_triton_kernels, name.removesuffix("_bf16").removesuffix("_f32"))
  constexprs, pointers = _RAW_KERNELS[name]
  signature = {arg: pointers.get(arg, "*fp32") for arg in fn.arg_names if arg not in constexprs}
  signature.update({arg: "constexpr" for arg in constexprs})
  compiled = triton.compile(triton.compiler.ASTSource(fn, signature, constexprs),
                            target=GPUTarget("cuda", 90, 32))
  assert ".target sm_90" in compiled.asm["ptx"]
  assert len(compiled.asm["cubin"]) > 0
  if name == "ssd_fwd_kernel_bf16":
    assert "wgmma" in compiled.asm["ptx"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ssd", "selective_scan"])
def test_pallas_triton_kernels_compile_for_sm90(kind):
  """The Pallas-generated Triton IR (forward and backward) goes through the installed triton's whole
  pipeline down to a cubin for sm_90: catches what only the Triton compiler checks (shapes, shared memory)."""
  pytest.importorskip("triton")
  loss = _ssd_loss if kind == "ssd" else _scan_loss
  grad = jax.grad(lambda *a: loss("gpu", *a), argnums=tuple(range(6)))
  modules = triton_modules(grad, _shapes(kind, jnp.bfloat16))
  assert len(modules) == _KERNELS[kind]
  for text in modules:
    compiled = compile_module(text, num_warps=4, num_stages=1)
    assert len(compiled.asm["cubin"]) > 0
    assert compiled.metadata.shared <= 227 * 1024  # H100 shared memory per block
