"""Pallas flash attention with a `custom_vjp`: lays inputs out for the kernels (padded where needed; head-major
on TPU, see `layout.to_kernel_layout`), runs the forward kernel, and on the backward pass runs the dk/dv and dq
kernels, or the fused backward kernel, from `pallas_backward`."""

from __future__ import annotations

import functools

import jax

from pallas_kernels.attention import _common, layout, pallas_backward, pallas_forward, tiling as tiling_lib


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention(q, k, v, spec, tilings):
  return _forward(q, k, v, spec, tilings)[0]


def _forward(q, k, v, spec, tilings):
  t = tilings.forward
  ql = layout.to_kernel_layout(q, t, t.q_pad)
  kl = layout.to_kernel_layout(k, t, t.kv_pad)
  vl = layout.to_kernel_layout(v, t, t.kv_pad)
  out_l, lse = pallas_forward.forward(ql, kl, vl, spec, t)
  out = layout.from_kernel_layout(out_l, t, t.q_len)
  return out, (ql, kl, vl, out_l, lse)


def _backward(spec, tilings, residuals, dout):
  t = tilings.forward
  ql, kl, vl, out_l, lse = residuals
  dout_l = layout.to_kernel_layout(dout, t, t.q_pad)
  dq, dk, dv = pallas_backward.backward(ql, kl, vl, out_l, lse, dout_l, spec, tilings)
  return (layout.from_kernel_layout(dq, t, t.q_len),
          layout.from_kernel_layout(dk, t, t.kv_len),
          layout.from_kernel_layout(dv, t, t.kv_len))


_attention.defvjp(_forward, _backward)


def pallas_flash_attention(q, k, v, spec: _common.AttentionSpec, *, backend: str, block_q=None, block_k=None,
                           block_sizes=None):
  """Pallas flash attention built for `backend` ("gpu"/"cuda"/"rocm", "tpu" or "interpret").

  Args:
    q: (B, Q, H, D); k, v: (B, K, KH, D) (already checked by `_common.check_inputs`).
    spec: attention options from `_common.make_spec`.
    block_q, block_k: block sizes of all three kernels; defaults per backend and kernel (`tiling.make_tilings`).
    block_sizes: `tiling.BlockSizes`, per-kernel blocks and GPU launch parameters (precedence over the above).

  Returns:
    (B, Q, H, D) in q.dtype, differentiable w.r.t. q, k, v through the Pallas backward kernels.
  """
  dtype = jax.numpy.result_type(q.dtype, k.dtype, v.dtype)
  tilings = tiling_lib.make_tilings(backend, q_len=q.shape[1], kv_len=k.shape[1], head_dim=q.shape[3],
                                    groups=q.shape[2] // k.shape[2], block_q=block_q, block_k=block_k,
                                    block_sizes=block_sizes, causal=spec.causal,
                                    itemsize=jax.numpy.dtype(dtype).itemsize)
  out = _attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), spec, tilings)
  return out.astype(q.dtype)
