"""`impl="mosaic"` flash attention: the Hopper kernels written in Pallas Mosaic GPU (`mosaic_forward`,
`mosaic_backward`) behind a `custom_vjp`, with the inputs zero padded to the kernels' multiples (padding keys and rows
are masked inside the kernels) and sliced back."""

from __future__ import annotations

import dataclasses
import functools

import jax

from pallas_kernels.attention import _common, layout, mosaic_backward, mosaic_blocks as mb, mosaic_forward
from pallas_kernels.attention.tiling import Tiling


@dataclasses.dataclass(frozen=True)
class _Plan:
  """The three kernels' tilings (same padded lengths), the ring depth and the forward's schedule: static, hashable."""
  forward: Tiling
  dq: Tiling
  dkdv: Tiling
  stages: int
  pingpong: bool


def _plan(q, k, blocks: mb.MosaicBlocks) -> _Plan:
  make = functools.partial(mb.make_tiling, q_len=q.shape[1], kv_len=k.shape[1], head_dim=q.shape[3],
                           groups=q.shape[2] // k.shape[2], blocks=blocks)
  return _Plan(forward=make(block_q=blocks.forward_q, block_k=blocks.forward_kv),
               dq=make(block_q=blocks.dq_q, block_k=blocks.dq_kv),
               dkdv=make(block_q=blocks.dkdv_q, block_k=blocks.dkdv_kv),
               stages=blocks.stages, pingpong=blocks.pingpong)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention(q, k, v, spec, plan):
  return _forward(q, k, v, spec, plan)[0]


def _forward(q, k, v, spec, plan: _Plan):
  t = plan.forward
  ql, kl, vl = (layout.to_kernel_layout(x, t, pad) for x, pad in ((q, t.q_pad), (k, t.kv_pad), (v, t.kv_pad)))
  out_l, lse = mosaic_forward.forward(ql, kl, vl, spec, t, plan.stages, plan.pingpong)
  return layout.from_kernel_layout(out_l, t, t.q_len), (ql, kl, vl, out_l, lse)


def _backward(spec, plan: _Plan, residuals, dout):
  ql, kl, vl, out_l, lse = residuals
  t = plan.forward
  dout_l = layout.to_kernel_layout(dout.astype(ql.dtype), t, t.q_pad)
  dq, dk, dv = mosaic_backward.backward(ql, kl, vl, out_l, lse, dout_l, spec, plan.dq, plan.dkdv, plan.stages)
  return (layout.from_kernel_layout(dq, t, t.q_len), layout.from_kernel_layout(dk, t, t.kv_len),
          layout.from_kernel_layout(dv, t, t.kv_len))


_attention.defvjp(_forward, _backward)


def mosaic_flash_attention(q, k, v, spec: _common.AttentionSpec, *, blocks: mb.MosaicBlocks | None = None):
  """Flash attention on a Hopper GPU through the Mosaic GPU kernels.

  Args:
    q: (B, Q, H, D); k, v: (B, K, KH, D), float16 or bfloat16, D <= 128 (checked by `mb.check_mosaic_inputs`).
    spec: attention options from `_common.make_spec` (all of them: causal, window, softcap, hooks).
    blocks: `MosaicBlocks`, default `MosaicBlocks()`.

  Returns:
    (B, Q, H, D) in q.dtype, differentiable w.r.t. q, k and v through the Mosaic backward kernels.
  """
  blocks = blocks or mb.MosaicBlocks()
  blocks.check()
  mb.check_mosaic_inputs(q, k, v)
  dtype = jax.numpy.result_type(q.dtype, k.dtype, v.dtype)
  mb.check_shared_memory(blocks, mb.head_dim_pad(q.shape[3]), jax.numpy.dtype(dtype).itemsize)
  out = _attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), spec, _plan(q, k, blocks))
  return out.astype(q.dtype)
