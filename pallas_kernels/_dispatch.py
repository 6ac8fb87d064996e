"""Choosing a kernel implementation: one `impl` string, resolved the same way by every entry point.

`impl` values:
  "auto"             "pallas" on TPU, the measured faster one on GPU (`AUTO_ON_GPU`), and "xla" elsewhere (CPU).
  "xla"              plain jnp compiled by XLA: the reference implementation differentiated by JAX (scans), or a
                     formulation with a hand-written backward tested against it (attention: `xla_attention`).
  "pallas"           the Pallas kernel compiled for the current backend (Mosaic on TPU, Triton on GPU).
  "pallas_interpret" the Pallas kernel run by the Pallas interpreter (any backend; used in CPU tests).
  "triton"           a raw Triton kernel through jax_triton (GPU only, `[gpu]` extra; scans only).
"""

from __future__ import annotations

import jax

IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "triton")


GPU_BACKENDS = ("gpu", "cuda", "rocm")

# What "auto" runs on a GPU, per kernel, from measurement (experiments/bench/RESULTS.md, H200, bf16,
# 2026-11-27): Pallas forward+backward vs XLA was 6.5-6.6x for attention (before the block-size tuning, which
# made it another 1.7x faster at head_dim 128), 6.2-11.3x for the selective scan, and 2.08x / 2.39x for SSD with
# the chunk-parallel backward (L8192 n128 / L4096 n64). Change an entry when a measurement says so.
AUTO_ON_GPU = {"flash_attention": "pallas", "selective_scan": "pallas", "ssd": "pallas"}
# Where float32 inputs measured otherwise: the SSD kernel's float32 matmuls (3-pass TF32) spill registers, and its
# forward+backward took 13.3 ms against XLA's 5.55 ms (H200, b4 L8192 h16 p64 n128, 2026-11-27). float32 attention
# stays on Pallas: 1.08-1.86x XLA forward+backward at every shape measured (H200, seq 128-2048, head_dim 16-128).
AUTO_ON_GPU_FLOAT32 = {"ssd": "xla"}


def resolve_impl(impl: str, *, kernel: str | None = None, available: tuple[str, ...] = IMPLS,
                 backend: str | None = None, float32: bool = False) -> str:
  """Returns the concrete implementation for `impl` on `backend` (default: jax.default_backend()).

  "auto" is "pallas" on TPU, on GPU `AUTO_ON_GPU[kernel]` ("pallas" for an unnamed kernel) or, when `float32`
  (the kernel would compute in float32), `AUTO_ON_GPU_FLOAT32[kernel]` where listed, and "xla" on CPU.
  Raises ValueError for an unknown name or one this kernel does not offer, naming the choices.
  """
  if impl not in IMPLS:
    raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
  if impl == "auto":
    backend = backend or jax.default_backend()
    if backend in GPU_BACKENDS:
      impl = (float32 and AUTO_ON_GPU_FLOAT32.get(kernel)) or AUTO_ON_GPU.get(kernel, "pallas")
    else:
      impl = "pallas" if backend == "tpu" and "pallas" in available else "xla"
  if impl not in available:
    raise ValueError(f"impl {impl!r} is not offered by this kernel; choose one of {', '.join(available)}")
  return impl


def gpu_compiler_params(**kwargs):
  """Pallas compiler parameters for the Triton GPU lowering (without them jax may pick Mosaic GPU)."""
  from jax.experimental.pallas import triton as pltriton
  return pltriton.CompilerParams(**kwargs)


def tpu_compiler_params(**kwargs):
  """Pallas compiler parameters for the Mosaic TPU lowering."""
  from jax.experimental.pallas import tpu as pltpu
  return pltpu.CompilerParams(**kwargs)
