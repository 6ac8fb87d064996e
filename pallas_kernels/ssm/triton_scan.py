"""impl="triton": the Mamba-1 selective-scan forward as a raw Triton kernel, called through jax_triton.

Forward: `_triton_kernels.selective_scan_fwd_kernel` (one program per batch row and channel block, a loop
over time). Differentiation: a `custom_vjp` whose backward reruns the Pallas path (Triton-lowered forward to
rebuild the chunk states, then the Pallas backward kernel), so gradients match impl="pallas".
`jax_triton` and `triton` are imported lazily (the optional `[gpu]` extra; jax_triton needs a GPU jaxlib).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pallas_kernels.ssm._jax_triton import require_cuda_backend, triton_call
from pallas_kernels.ssm._pallas_common import next_pow2
from pallas_kernels.ssm.selective_scan_pallas import selective_scan_pallas
from pallas_kernels.ssm.selective_scan_reference import check_selective_scan_args, finish_output, prepare_delta

DEFAULT_BLOCK_D = 32
NUM_WARPS = 4


def _forward(u, dl, A, B, C, h0, block_d):
  """float32 u, dl (batch, seq, d); A (d, n); B, C (batch, seq, g, n); h0 (batch, d, n) -> y, h_L."""
  from pallas_kernels.ssm import _triton_kernels  # lazy: imports triton

  bsz, l, d = u.shape
  g, n = B.shape[2:]
  f32 = jnp.float32
  y, ht = triton_call(
      u, dl, A, B, C, h0,
      kernel=_triton_kernels.selective_scan_fwd_kernel,
      out_shape=[jax.ShapeDtypeStruct((bsz, l, d), f32), jax.ShapeDtypeStruct((bsz, d, n), f32)],
      grid=(bsz, -(-d // block_d)),
      num_warps=NUM_WARPS,
      SEQ=l, DIM=d, GROUPS=g, NSTATE=n, BLOCK_D=block_d, BLOCK_N=next_pow2(n),
  )
  return y, ht


def _pallas_core(u, dl, A, B, C, h0):
  return selective_scan_pallas(u, dl, A, B, C, initial_state=h0, return_final_state=True, backend="gpu")


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _core(u, dl, A, B, C, h0, block_d):
  return _forward(u, dl, A, B, C, h0, block_d)


def _core_fwd(u, dl, A, B, C, h0, block_d):
  return _forward(u, dl, A, B, C, h0, block_d), (u, dl, A, B, C, h0)


def _core_bwd(block_d, res, cts):
  del block_d
  return jax.vjp(_pallas_core, *res)[1](cts)


_core.defvjp(_core_fwd, _core_bwd)


def selective_scan_triton(u, delta, A, B, C, *, D=None, z=None, delta_bias=None, delta_softplus=False,
                          initial_state=None, return_final_state=False, block_d=DEFAULT_BLOCK_D):
  """Mamba-1 selective scan with the raw Triton forward kernel (CUDA GPU only).

  Arguments, shapes and results as `selective_scan_reference`; block_d: channels per program (power of two).
  delta_bias/softplus, D and the silu(z) gate are applied in jnp around the kernel.
  """
  require_cuda_backend()
  bsz, l, d, g, n = check_selective_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
  f32 = jnp.float32
  dl = prepare_delta(delta, delta_bias, delta_softplus)
  h0 = jnp.zeros((bsz, d, n), f32) if initial_state is None else initial_state.astype(f32)
  y, final = _core(u.astype(f32), dl, A.astype(f32), B.astype(f32), C.astype(f32), h0, next_pow2(block_d))
  return finish_output(y, u, D, z, final, return_final_state)
