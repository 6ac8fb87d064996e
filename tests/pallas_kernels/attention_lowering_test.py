"""Cross-lowering of the impl="pallas" attention kernels from a CPU host: forward and backward (the dk/dv
and dq kernels; on cuda also the fused backward kernel) are exported for "tpu" (Mosaic) and "cuda" (Triton) with
`jax.export`, forcing the kernel builder's backend through `flash_attention(..., _backend=...)`.

This checks the jax -> Mosaic / Triton MLIR lowering (block shapes, supported primitives, loops); the
device compilers themselves (Mosaic passes in libtpu, Triton -> PTX) only run on the device.
"""

import re

import jax
import jax.numpy as jnp
import pytest

from pallas_kernels.attention import BlockSizes, flash_attention

_TARGETS = {"tpu": "tpu_custom_call", "cuda": "__gpu$xla.gpu.triton"}
_BACKENDS = {"tpu": "tpu", "cuda": "gpu"}


def alibi(s, q_idx, kv_idx, head):
  return s - jnp.exp2(-(head + 1).astype(jnp.float32)) * (q_idx - kv_idx).astype(jnp.float32)


def prefix_lm_mask(q_idx, kv_idx, head):
  return (kv_idx < 5) | (kv_idx <= q_idx)


def document_mask(q_idx, kv_idx, head):
  return (q_idx // 7) == (kv_idx // 7)


_CONFIGS = {
    "plain-bf16": dict(shape=(2, 256, 4, 2, 64), dtype=jnp.bfloat16, kw=dict(causal=True)),
    "hooks-f32-ragged": dict(shape=(1, 100, 8, 2, 80), dtype=jnp.float32,
                             kw=dict(causal=False, sliding_window=33, softcap=30.0, score_mod=alibi,
                                     mask_mod=prefix_lm_mask)),
}


def _export(platform, config, backward, block_sizes=None):
  batch, seq, heads, kv_heads, dim = config["shape"]
  q = jax.ShapeDtypeStruct((batch, seq, heads, dim), config["dtype"])
  kv = jax.ShapeDtypeStruct((batch, seq, kv_heads, dim), config["dtype"])

  def attend(q, k, v):
    return flash_attention(q, k, v, impl="pallas", _backend=_BACKENDS[platform], block_sizes=block_sizes,
                           **config["kw"])

  fn = attend
  if backward:
    fn = jax.grad(lambda q, k, v: attend(q, k, v).astype(jnp.float32).sum(), argnums=(0, 1, 2))
  checks = [jax.export.DisabledSafetyCheck.custom_call(_TARGETS["cuda"])]  # Triton calls carry no guarantee
  return jax.export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(q, kv, kv)


@pytest.mark.parametrize("config", sorted(_CONFIGS))
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_pallas_path_lowers(platform, backward, config):
  exported = _export(platform, _CONFIGS[config], backward)
  text = exported.mlir_module()
  targets = re.findall(r"custom_call @([\w$.]+)", text)
  # Forward: one kernel. Backward: forward kernel (residuals) + dk/dv kernel + dq kernel.
  assert targets == [_TARGETS[platform]] * (3 if backward else 1)
  assert exported.platforms == (platform,)
  batch, seq, heads, kv_heads, dim = _CONFIGS[config]["shape"]
  want = ([(batch, seq, heads, dim), (batch, seq, kv_heads, dim), (batch, seq, kv_heads, dim)] if backward
          else [(batch, seq, heads, dim)])
  assert [a.shape for a in exported.out_avals] == want


def test_cuda_document_mask_with_floor_division_lowers():
  config = dict(shape=(1, 64, 2, 1, 32), dtype=jnp.bfloat16, kw=dict(mask_mod=document_mask))
  assert "__gpu$xla.gpu.triton" in _export("cuda", config, backward=True).mlir_module()


@pytest.mark.xfail(
    raises=ValueError, strict=True,
    reason="jnp `//` on ints lowers through lax.sign, whose Mosaic rule calls tpu_info.get_tpu_info() to read "
           "the TPU generation of the current device ('Unsupported TPU device kind: cpu' on a CPU host); "
           "a TPU host (or a TPU abstract device, next test) answers it. The kernel itself uses lax.div.")
def test_tpu_document_mask_with_floor_division_lowers():
  config = dict(shape=(1, 64, 2, 1, 32), dtype=jnp.bfloat16, kw=dict(mask_mod=document_mask))
  _export("tpu", config, backward=False)


def test_tpu_document_mask_lowers_under_a_tpu_abstract_device():
  """Workaround for the xfail above: an abstract mesh naming a TPU device kind answers the generation query."""
  device = jax.sharding.AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu")
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  config = dict(shape=(1, 64, 2, 1, 32), dtype=jnp.bfloat16, kw=dict(mask_mod=document_mask))
  with jax.sharding.use_abstract_mesh(mesh):
    text = _export("tpu", config, backward=True).mlir_module()
  assert re.findall(r"custom_call @([\w$.]+)", text) == ["tpu_custom_call"] * 3


def _triton_ir_bytes(mlir_text):
  """The serialized Triton modules (bytes) of every Triton custom call in an exported module's MLIR text."""
  modules = []
  for escaped in re.findall(r'ir = "((?:[^"\\]|\\.)*)"', mlir_text):
    out, i = bytearray(), 0
    while i < len(escaped):
      if escaped[i] == "\\" and escaped[i + 1] in '\\"':
        out.append(ord(escaped[i + 1]))
        i += 2
      elif escaped[i] == "\\":
        out.append(int(escaped[i + 1:i + 3], 16))
        i += 3
      else:
        out += escaped[i].encode()
        i += 1
    modules.append(bytes(out))
  return modules


@pytest.mark.parametrize("config", sorted(_CONFIGS))
def test_cuda_kernels_exponentiate_with_exp2(config):
  """Every kernel uses exp2 (libdevice exp2f), never the accurate expf the Triton lowering gives jnp.exp."""
  modules = _triton_ir_bytes(_export("cuda", _CONFIGS[config], backward=True).mlir_module())
  assert len(modules) == 3
  for module in modules:
    assert b"__nv_exp2f" in module and b"__nv_expf" not in module


@pytest.mark.parametrize("config", sorted(_CONFIGS))
def test_cuda_fused_backward_lowers_with_atomic_adds(config):
  """The fused backward: the forward kernel and one backward kernel, which adds dq with atomics (and uses exp2)."""
  text = _export("cuda", _CONFIGS[config], True, BlockSizes(backward="fused")).mlir_module()
  assert re.findall(r"custom_call @([\w$.]+)", text) == [_TARGETS["cuda"]] * 2
  forward, fused = _triton_ir_bytes(text)
  assert b"atomic_rmw" in fused and b"atomic_rmw" not in forward
  assert b"__nv_exp2f" in fused and b"__nv_expf" not in fused


def test_fused_backward_does_five_matmuls_per_tile_where_the_split_one_does_seven():
  """Unmasked, aligned (one loop body per kernel): forward 2 dots; split backward dk/dv 4 + dq 3 (the scores and dP
  twice); fused 5 (s, dP, dV, dK, dQ)."""
  from pallas_kernels import triton_inspect

  q, kv = jax.ShapeDtypeStruct((1, 256, 4, 64), jnp.bfloat16), jax.ShapeDtypeStruct((1, 256, 2, 64), jnp.bfloat16)
  dots = {}
  for backward in ("split", "fused"):
    loss = lambda q, k, v: flash_attention(q, k, v, impl="pallas", _backend="gpu", causal=False,
                                           block_sizes=BlockSizes(backward=backward)).astype(jnp.float32).sum()
    modules = triton_inspect.triton_modules(jax.grad(loss, argnums=(0, 1, 2)), (q, kv, kv))
    dots[backward] = [module.count("tt.dot ") for module in modules]
  assert dots == {"split": [2, 4, 3], "fused": [2, 5]}


@pytest.mark.parametrize("dtype,three_pass", [(jnp.float32, True), (jnp.bfloat16, False)])
def test_float32_gpu_dots_run_as_3_pass_tf32(dtype, three_pass):
  """float32 tiles: every dot of every kernel asks Triton for 3-pass TF32 (float32-accurate, on the tensor cores;
  Triton's IEEE default runs on the CUDA cores); 16-bit tiles: the plain one-pass dot."""
  from pallas_kernels import triton_inspect

  q = jax.ShapeDtypeStruct((1, 128, 2, 32), dtype)
  loss = lambda q, k, v: flash_attention(q, k, v, impl="pallas", _backend="gpu", causal=True,
                                         block_sizes=BlockSizes(backward="split")).astype(jnp.float32).sum()
  modules = triton_inspect.triton_modules(jax.grad(loss, argnums=(0, 1, 2)), (q, q, q))
  assert len(modules) == 3
  for module in modules:
    dots = [line for line in module.splitlines() if "tt.dot " in line]
    assert dots and all(("inputPrecision = tf32x3" in line) == three_pass for line in dots), module


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("head_dim", [64, 96, 256])
def test_default_gpu_kernels_compile_for_sm90_within_shared_memory(head_dim, dtype):
  """Every attention kernel at its sm_90 defaults (blocks, warps, stages; the float32 table for 4-byte inputs)
  goes through the installed triton down to an sm_90 cubin that fits the 227 KiB of shared memory a block may use
  on an H100/H200; bf16 ones up to head_dim 128 issue Hopper's wgmma instructions. (The device's own triton may
  differ.) float32 at head_dim 96 (padded to 128) with the bf16 table needed 256 KiB and failed on an H200; 256 is
  the large-head_dim bucket."""
  pytest.importorskip("triton")
  from pallas_kernels import triton_inspect
  from pallas_kernels.attention import tiling

  q = jax.ShapeDtypeStruct((1, 512, 2, head_dim), dtype)
  for sizes in (BlockSizes(backward="split"), BlockSizes(backward="fused")):
    loss = lambda q, k, v: flash_attention(q, k, v, impl="pallas", _backend="gpu",
                                           block_sizes=sizes).astype(jnp.float32).sum()
    modules = triton_inspect.triton_modules(jax.grad(loss, argnums=(0, 1, 2)), (q, q, q))
    tilings = tiling.make_tilings("gpu", q_len=512, kv_len=512, head_dim=head_dim, groups=1, causal=True,
                                  block_sizes=sizes, itemsize=jnp.dtype(dtype).itemsize)
    assert len(modules) == len(tilings.kernels)  # lowered in launch order
    for name, text in zip(tilings.kernels, modules):
      t = getattr(tilings, name)
      usage = triton_inspect.resources(triton_inspect.compile_module(text, num_warps=t.num_warps,
                                                                     num_stages=t.num_stages))
      assert usage.shared_bytes <= 227 * 1024, (name, usage)
      assert usage.wgmma or dtype == jnp.float32 or head_dim > 128, (name, usage)  # 32-row tiles: mma.sync
