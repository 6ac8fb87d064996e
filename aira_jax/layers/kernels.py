"""The one seam between the layers and the kernels: attention and the Mamba-2 scan.

Layers call these two functions and nothing else for sequence mixing. They forward to `pallas_kernels`, whose
`impl` argument ("auto" by default, from `ModelConfig.attention_impl` / `scan_impl`) picks plain jnp compiled
by XLA on CPU (`pallas_kernels.xla_attention`, the SSD reference) and the Pallas kernels on TPU and GPU. When a
Pallas kernel runs under a mesh set with `jax.set_mesh`, it runs inside `shard_map` (batch and heads split),
since a kernel on sharded inputs would otherwise be gathered and run whole on every device. The XLA path needs
no such wrapper.
"""

from __future__ import annotations

import jax

import pallas_kernels
from pallas_kernels import sharding
from pallas_kernels.ssm.api import resolve_ssd_impl


def _plain_xla(impl: str, kernel: str) -> bool:
  return pallas_kernels.resolve_impl(impl, kernel=kernel) == "xla"


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool, sliding_window: int | None,
              softcap: float | None, impl: str) -> jax.Array:
  """Scaled dot-product attention.

  q: (batch, seq, heads, head_dim); k, v: (batch, seq, kv_heads, head_dim). Returns q's shape and dtype.
  """
  options = dict(causal=causal, sliding_window=sliding_window, softcap=softcap, impl=impl)
  if _plain_xla(impl, "flash_attention"):
    return pallas_kernels.flash_attention(q, k, v, **options)
  return sharding.run_sharded_if_meshed(sharding.sharded_flash_attention, pallas_kernels.flash_attention,
                                        q, k, v, **options)


def ssd_scan(x: jax.Array, dt: jax.Array, a: jax.Array, b: jax.Array, c: jax.Array, d: jax.Array, *,
             chunk_size: int, impl: str) -> jax.Array:
  """Mamba-2 scan h_t = exp(dt_t a) h_{t-1} + dt_t x_t b_t^T, y_t = h_t c_t + d x_t.

  x: (batch, seq, heads, head_dim); dt: (batch, seq, heads) positive; a: (heads,) negative;
  b, c: (batch, seq, groups, state); d: (heads,). Returns y like x.
  """
  options = dict(D=d, chunk_size=chunk_size, impl=impl)
  if resolve_ssd_impl(impl, x, b, c) == "xla":
    return pallas_kernels.ssd(x, dt, a, b, c, **options)
  return sharding.run_sharded_if_meshed(sharding.sharded_ssd, pallas_kernels.ssd, x, dt, a, b, c, **options)


def check_runs_here(config) -> None:
  """Traces one tiny attention and one tiny SSD call with `config`'s (a ModelConfig) kernel impls and compute dtype
  on this process's backend (`jax.eval_shape`: nothing is compiled), so an impl this backend cannot run ("mosaic" or
  "cudnn" without a CUDA GPU, "pallas" on CPU, ...) raises its ValueError now rather than in every training run."""
  shape = jax.ShapeDtypeStruct
  dtype, seq, head_dim = config.compute_dtype, 8, config.resolved_head_dim
  q = shape((1, seq, config.num_heads, head_dim), dtype)
  kv = shape((1, seq, config.resolved_kv_heads, head_dim), dtype)
  jax.eval_shape(lambda q, k, v: attention(q, k, v, causal=True, sliding_window=config.sliding_window,
                                           softcap=config.attention_softcap, impl=config.attention_impl), q, kv, kv)
  heads, groups, state = config.ssm_heads, config.ssm_groups, config.ssm_state_dim
  f32 = jax.numpy.float32
  jax.eval_shape(lambda *args: ssd_scan(*args, chunk_size=config.ssm_chunk_size, impl=config.scan_impl),
                 shape((1, seq, heads, config.ssm_head_dim), dtype), shape((1, seq, heads), f32), shape((heads,), f32),
                 shape((1, seq, groups, state), dtype), shape((1, seq, groups, state), dtype), shape((heads,), f32))
