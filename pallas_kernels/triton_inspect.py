"""Inspect the Triton kernels Pallas generates, without a GPU: capture their Triton IR while exporting a
function for "cuda", compile it to an sm_90 (or other) cubin with the installed `triton` package, and read the
cubin's resource usage (registers, spill stack, shared memory) with the `cuobjdump` triton ships.

For kernel development: a launch configuration that needs more shared memory than a block may have, or that
spills registers, shows here before any GPU time is spent. The installed triton may differ from the one
inside the GPU's jaxlib, so treat the numbers as close estimates. Needs `triton` (the `[gpu]` extra's
dependency, installable on any Linux x86-64 host); version-specific: relies on jax's Pallas-Triton lowering
internals (jax 0.10 / 0.11).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile

import jax

TRITON_CUSTOM_CALL = "__gpu$xla.gpu.triton"


def export_text(fn, args, platform: str) -> str:
  """StableHLO text of jit(fn) exported for `platform` ("cuda", "tpu") on `args` (arrays or ShapeDtypeStructs).
  The Triton custom call has no export compatibility guarantee, so that safety check is switched off."""
  checks = [jax.export.DisabledSafetyCheck.custom_call(TRITON_CUSTOM_CALL)]
  return jax.export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(*args).mlir_module()


def triton_modules(fn, args) -> list[str]:
  """Triton IR text of every Pallas kernel in jit(fn)(*args), in lowering order, from an export for "cuda".
  The kernels must be built for the GPU (e.g. `flash_attention(..., impl="pallas", _backend="gpu")`)."""
  from jax._src.pallas.triton import lowering

  modules, original = [], lowering.lower_jaxpr_to_triton_module

  def capture(*a, **kw):
    result = original(*a, **kw)
    modules.append(result.module.operation.get_asm(enable_debug_info=False))
    return result

  lowering.lower_jaxpr_to_triton_module = capture
  try:
    export_text(fn, args, "cuda")
  finally:
    lowering.lower_jaxpr_to_triton_module = original
  return modules


def compile_module(ir_text: str, *, num_warps: int, num_stages: int, capability: int = 90):
  """Compiles Triton IR text with the installed triton for a CUDA target (default sm_90); returns triton's
  compiled kernel (`.asm["ptx"]`, `.asm["cubin"]`, `.metadata.shared`)."""
  import triton
  from triton.backends.compiler import GPUTarget

  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "kernel.ttir")
    with open(path, "w") as f:
      f.write(ir_text)
    return triton.compile(path, target=GPUTarget("cuda", capability, 32),
                          options=dict(num_warps=num_warps, num_stages=num_stages))


@dataclasses.dataclass(frozen=True)
class Resources:
  """Per-thread registers and spill stack (bytes), shared memory of a block (bytes, triton's count), and
  whether Hopper's asynchronous warpgroup matmul (wgmma) is used."""
  registers: int | None
  stack_bytes: int | None
  shared_bytes: int
  wgmma: bool


def resources(compiled) -> Resources:
  """Resource usage of a compiled kernel; registers / stack from triton's bundled cuobjdump (None without it)."""
  import triton

  tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
  registers = stack = None
  if os.path.exists(tool):
    with tempfile.TemporaryDirectory() as folder:
      cubin = os.path.join(folder, "kernel.cubin")
      with open(cubin, "wb") as f:
        f.write(compiled.asm["cubin"])
      usage = subprocess.run([tool, "--dump-resource-usage", cubin], capture_output=True, text=True).stdout
    match = re.search(r"REG:(\d+) STACK:(\d+)", usage)
    if match:
      registers, stack = int(match.group(1)), int(match.group(2))
  return Resources(registers, stack, int(compiled.metadata.shared), "wgmma.mma_async" in compiled.asm["ptx"])
