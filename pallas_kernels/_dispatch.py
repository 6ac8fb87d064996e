"""Choosing a kernel implementation: one `impl` string, resolved the same way by every entry point.

`impl` values:
  "auto"             "pallas" on TPU and GPU, "xla" (the plain-jnp reference) elsewhere (CPU).
  "xla"              the reference implementation, differentiated by JAX.
  "pallas"           the Pallas kernel compiled for the current backend (Mosaic on TPU, Triton on GPU).
  "pallas_interpret" the Pallas kernel run by the Pallas interpreter (any backend; used in CPU tests).
  "triton"           a raw Triton kernel through jax_triton (GPU only, `[gpu]` extra; scans only).
"""

from __future__ import annotations

import jax

IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "triton")


def resolve_impl(impl: str, *, available: tuple[str, ...] = IMPLS, backend: str | None = None) -> str:
  """Returns the concrete implementation for `impl` on `backend` (default: jax.default_backend()).

  Raises ValueError for an unknown name or one this kernel does not offer, naming the choices.
  """
  if impl not in IMPLS:
    raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
  if impl == "auto":
    backend = backend or jax.default_backend()
    impl = "pallas" if backend in ("tpu", "gpu", "cuda", "rocm") and "pallas" in available else "xla"
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
