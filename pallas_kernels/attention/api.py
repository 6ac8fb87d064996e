"""Entry point `flash_attention`: checks inputs and dispatches on `impl` to the XLA formulation
(`xla_attention`), the Pallas kernel (compiled for the current backend, or interpreted), cuDNN, or the Hopper
kernels in Pallas Mosaic GPU; on a GPU, "auto" takes a measured per-shape choice where one is recorded."""

from __future__ import annotations

import jax

from pallas_kernels import _dispatch
from pallas_kernels.attention import _common
from pallas_kernels.attention.xla_attention import xla_attention

ATTENTION_IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "cudnn", "mosaic")
SIXTEEN_BIT_IMPLS = ("cudnn", "mosaic")  # impls that take float16 / bfloat16 inputs only


def flash_attention(q, k, v, *, causal=True, sliding_window=None, softcap=None, scale=None,
                    score_mod=None, mask_mod=None, impl="auto", block_q=None, block_k=None, block_sizes=None,
                    _backend=None):
  """Memory-efficient softmax attention (FlashAttention-2) with grouped KV and score/mask hooks.

  Args:
    q: (batch, q_len, heads, head_dim) float32/bfloat16/float16.
    k, v: (batch, kv_len, kv_heads, head_dim), heads % kv_heads == 0; query head h uses kv head
      h // (heads // kv_heads).
    causal: keep kv_idx <= q_idx, where q_idx = row + (kv_len - q_len) (bottom-right aligned).
    sliding_window: int w, additionally keep q_idx - kv_idx < w.
    softcap: float c; scores become c * tanh(s / c) after scaling.
    scale: multiplier of q.k, default head_dim ** -0.5.
    score_mod: fn(s, q_idx, kv_idx, head) -> s applied after softcap; s float32 (Q, K), q_idx int32 (Q, 1),
      kv_idx int32 (1, K), head int32 scalar. Must be elementwise in s, built from jnp ops, and may close
      over Python scalars but not over arrays (the Pallas kernel cannot capture array constants). Prefer
      lax.div to `//` on indices if the kernel must be cross-lowered for TPU from a non-TPU host.
    mask_mod: fn(q_idx, kv_idx, head) -> bool broadcastable to (Q, K), True = keep; ANDed with the others.
    impl: "auto" | "xla" | "pallas" | "pallas_interpret" | "cudnn" | "mosaic" (see `pallas_kernels._dispatch`;
      "cudnn": causal with q_len == kv_len, sliding_window and scale only, on a CUDA GPU; "mosaic": the Hopper
      kernels in Pallas Mosaic GPU, float16 / bfloat16 and head_dim <= 128, on an sm_90 GPU, every option;
      its hooks see full tiles, see `mosaic_common`).
    block_q, block_k: Pallas block sizes of the forward kernel and both backward kernels. Defaults: GPU per
      kernel and head_dim (`tiling.GPU_DEFAULTS`, measured), clamped down to the power of two >= 16 covering
      short sequences; TPU 128/128; interpret 64/64 clamped to the length rounded up to 8. GPU blocks must be
      powers of two >= 16 (head_dim is zero-padded to a power of two), TPU blocks multiples of 8 (128
      recommended).
    block_sizes: `pallas_kernels.attention.BlockSizes(forward=, dkdv=, dq=, fused=, backward=)` of
      `KernelBlocks(block_q, block_k, num_warps, num_stages)`: per-kernel blocks and, on GPU, Triton warps /
      pipeline stages; its values take precedence over block_q / block_k (None entries fall back to them, then to
      the defaults). With impl="mosaic": a `pallas_kernels.attention.MosaicBlocks` instead (block_q / block_k
      are refused there). backward="fused" (GPU and interpreter) replaces the two backward kernels (dkdv, dq) by one
      (fused) that adds dq with atomics (slower on an H200: experiments/bench/RESULTS.md, sixth session;
      `autotune(..., backward="auto")` compares them).
    _backend: internal override of the backend the Pallas kernel is built for ("gpu", "tpu"), used to
      cross-lower from a CPU host.

  Returns:
    (batch, q_len, heads, head_dim) in q.dtype. Rows whose keys are all masked are zero. Differentiable
    w.r.t. q, k and v (the Pallas path has its own backward kernels).

  The Pallas kernel keeps the whole (padded) k/v of a head resident per program (and, in the dk/dv kernel,
  the q/dO of a head group): on TPU that bounds the sequence length by VMEM (a few thousand tokens).
  """
  _common.check_inputs(q, k, v)
  kwargs = dict(causal=causal, sliding_window=sliding_window, softcap=softcap, scale=scale,
                score_mod=score_mod, mask_mod=mask_mod)
  if impl == "cudnn":
    check_cudnn_options(q, k, **kwargs)
  resolved = _dispatch.resolve_impl(impl, kernel="flash_attention", available=ATTENTION_IMPLS,
                                     backend=_backend)
  if impl == "auto" and (_backend or jax.default_backend()) in _dispatch.GPU_BACKENDS and not (
      block_q or block_k or block_sizes):
    resolved = measured_on_this_gpu(q, k, v, kwargs) or resolved
  if resolved == "cudnn":
    return dot_product_attention(q, k, v, causal=causal, sliding_window=sliding_window, scale=scale,
                                 implementation="cudnn")
  if resolved == "xla":
    return xla_attention(q, k, v, **kwargs)
  if resolved == "mosaic":
    return _mosaic(q, k, v, _common.make_spec(q, **kwargs), block_q, block_k, block_sizes, _backend)
  from pallas_kernels.attention import pallas_attention  # imported lazily: needs jax.experimental.pallas

  spec = _common.make_spec(q, **kwargs)
  if resolved == "pallas_interpret":
    backend = "interpret"
  else:
    backend = _backend or jax.default_backend()
  return pallas_attention.pallas_flash_attention(q, k, v, spec, backend=backend, block_q=block_q,
                                                 block_k=block_k, block_sizes=block_sizes)


def measured_on_this_gpu(q, k, v, options) -> str | None:
  """The impl `_dispatch.MEASURED_CHOICES` picks for this call on this GPU (16-bit inputs, measured shape range), if
  that impl takes the call's options; else None (the GPU default runs)."""
  from pallas_kernels.attention import mosaic_blocks, tiling

  if any(jax.numpy.dtype(x.dtype).itemsize != 2 for x in (q, k, v)):
    return None
  picked = _dispatch.measured_choice("flash_attention", capability_major=tiling.gpu_capability_major(),
                                     head_dim=q.shape[3], seq=k.shape[1])
  try:
    if picked == "cudnn":
      check_cudnn_options(q, k, **options)
    elif picked == "mosaic":
      mosaic_blocks.check_mosaic_inputs(q, k, v)
  except ValueError:
    return None
  return picked


def _mosaic(q, k, v, spec, block_q, block_k, block_sizes, backend):
  """impl="mosaic": checks what only it refuses (block arguments, a GPU other than Hopper), then runs it."""
  from pallas_kernels.attention import mosaic_attention, mosaic_blocks, tiling  # lazily: needs pallas.mosaic_gpu

  if block_q is not None or block_k is not None:
    raise ValueError("impl='mosaic' takes its block sizes as block_sizes=MosaicBlocks(...), not block_q / block_k")
  if block_sizes is not None and not isinstance(block_sizes, mosaic_blocks.MosaicBlocks):
    raise ValueError(f"impl='mosaic' takes block_sizes=MosaicBlocks(...); got {type(block_sizes).__name__}")
  major = None if backend else tiling.gpu_capability_major()  # None when cross-lowering
  if major is not None and major != 9:
    raise ValueError(f"impl='mosaic' needs a Hopper (sm_90) GPU (its kernels use Hopper's wgmma); this GPU is "
                     f"sm_{tiling.gpu_compute_capability()}: use impl='pallas'")
  return mosaic_attention.mosaic_flash_attention(q, k, v, spec, blocks=block_sizes)


def check_cudnn_options(q, k, *, causal, sliding_window, softcap, scale, score_mod, mask_mod) -> None:
  """ValueError naming what impl="cudnn" cannot do: softcap, score/mask hooks, a causal mask with q_len !=
  kv_len (cuDNN aligns it top-left; this API bottom-right)."""
  del sliding_window, scale
  unsupported = [name for name, value in (("softcap", softcap), ("score_mod", score_mod), ("mask_mod", mask_mod))
                 if value is not None]
  if unsupported:
    raise ValueError(f"impl='cudnn' takes causal, sliding_window and scale only, not {', '.join(unsupported)}; "
                     "use impl='pallas' or 'xla'")
  if causal and q.shape[1] != k.shape[1]:
    raise ValueError(f"impl='cudnn' with causal=True needs q_len == kv_len, got {q.shape[1]} and {k.shape[1]}")


def dot_product_attention(q, k, v, *, causal, sliding_window, scale, implementation):
  """This API's attention through `jax.nn.dot_product_attention` (grouped KV heads as they are). The window only
  bounds how far back a key may be (q_idx - kv_idx < sliding_window), so `local_window_size` is
  (sliding_window - 1, kv_len): later keys stay unless `causal` masks them."""
  window = None if sliding_window is None else (sliding_window - 1, k.shape[1])
  return jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=causal, local_window_size=window,
                                      implementation=implementation)
