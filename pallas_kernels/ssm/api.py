"""Entry points `ssd` and `selective_scan`: validate arguments, then dispatch on `impl`.

"xla" runs the plain-jnp reference (differentiated by JAX); "pallas" / "pallas_interpret" run the Pallas
kernels (hand-written backward through `jax.custom_vjp`); "triton" runs the raw Triton forward kernel through
jax_triton on a CUDA GPU (the backward is the Pallas one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pallas_kernels._dispatch import resolve_impl
from pallas_kernels.ssm._jax_triton import require_cuda_backend
from pallas_kernels.ssm.selective_scan_reference import check_selective_scan_args, selective_scan_reference
from pallas_kernels.ssm.ssd_reference import check_ssd_args, ssd_reference

SSD_IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "triton")
SELECTIVE_SCAN_IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "triton")


def _check_compiled_pallas(impl):
  if impl == "pallas" and jax.default_backend() not in ("gpu", "cuda", "rocm", "tpu"):
    raise ValueError(f"impl='pallas' compiles for GPU or TPU; this backend is {jax.default_backend()!r}. "
                     "Use impl='pallas_interpret' (the same kernels, interpreted) or 'xla' here.")


def resolve_ssd_impl(impl: str, x, B, C, backend: str | None = None) -> str:
  """The implementation `ssd` runs for `impl` with these inputs (on `backend`, default the current one). "auto"
  on GPU depends on the compute dtype: the Pallas kernel's matmuls run in float32 unless x, B and C are all
  bfloat16 (`matmul_dtype`)."""
  float32 = any(jnp.dtype(a.dtype) != jnp.bfloat16 for a in (x, B, C))
  return resolve_impl(impl, kernel="ssd", available=SSD_IMPLS, backend=backend, float32=float32)


def ssd(x, dt, A, B, C, *, D=None, initial_state=None, chunk_size=64, return_final_state=False, impl="auto"):
  """Mamba-2 SSD scan (scalar decay per head). See `ssd_reference` for the recurrence.

  Args:
    x: (batch, seq, heads, head_dim); dt: (batch, seq, heads) positive; A: (heads,) negative;
    B, C: (batch, seq, groups, d_state), groups divides heads; D: optional (heads,);
    initial_state: optional (batch, heads, head_dim, d_state).
    chunk_size: chunk length of the chunked algorithm (reference and Pallas kernel).
    impl: "auto" | "xla" | "pallas" | "pallas_interpret" | "triton" ("auto": see `pallas_kernels._dispatch`; on
      GPU the Pallas kernel for bfloat16 x, B and C, the reference otherwise, as measured; "triton": the raw
      Triton forward kernel with the Pallas backward, CUDA GPU only).

  Returns:
    y (batch, seq, heads, head_dim) in x.dtype, or (y, final_state (batch, heads, head_dim, d_state) float32).
  """
  check_ssd_args(x, dt, A, B, C, D, initial_state, chunk_size)
  impl = resolve_ssd_impl(impl, x, B, C)
  if impl == "xla":
    return ssd_reference(x, dt, A, B, C, D=D, initial_state=initial_state, chunk_size=chunk_size,
                         return_final_state=return_final_state)
  from pallas_kernels.ssm.ssd_pallas import ssd_pallas
  kwargs = dict(D=D, initial_state=initial_state, chunk_size=chunk_size, return_final_state=return_final_state)
  if impl == "triton":
    require_cuda_backend()
    return ssd_pallas(x, dt, A, B, C, **kwargs, backend="gpu", forward_kernel="triton")
  _check_compiled_pallas(impl)
  return ssd_pallas(x, dt, A, B, C, **kwargs, interpret=impl == "pallas_interpret")


def selective_scan(u, delta, A, B, C, *, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_final_state=False, impl="auto"):
  """Mamba-1 selective scan. See `selective_scan_reference` for the recurrence.

  Args:
    u, delta: (batch, seq, d_inner); A: (d_inner, d_state) negative; B, C: (batch, seq, groups, d_state);
    D, delta_bias: optional (d_inner,); z: optional (batch, seq, d_inner) gate;
    initial_state: optional (batch, d_inner, d_state).
    impl: "auto" | "xla" | "pallas" | "pallas_interpret" | "triton" (GPU only).

  Returns:
    y (batch, seq, d_inner) in u.dtype, or (y, final_state (batch, d_inner, d_state) float32).
  """
  check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
  impl = resolve_impl(impl, kernel="selective_scan", available=SELECTIVE_SCAN_IMPLS)
  kwargs = dict(D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus, initial_state=initial_state,
                return_final_state=return_final_state)
  if impl == "xla":
    return selective_scan_reference(u, delta, A, B, C, **kwargs)
  if impl == "triton":
    from pallas_kernels.ssm.triton_scan import selective_scan_triton  # raises ValueError off GPU
    return selective_scan_triton(u, delta, A, B, C, **kwargs)
  _check_compiled_pallas(impl)
  from pallas_kernels.ssm.selective_scan_pallas import selective_scan_pallas
  return selective_scan_pallas(u, delta, A, B, C, **kwargs, interpret=impl == "pallas_interpret")
