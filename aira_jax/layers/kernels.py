"""The one seam between the layers and the kernels: attention and the Mamba-2 scan.

Layers call these two functions and nothing else for sequence mixing. They forward to `pallas_kernels`, whose
`impl` argument ("auto" by default, from `ModelConfig.attention_impl` / `scan_impl`) picks the plain-jnp
reference on CPU and the Pallas kernels on TPU and GPU.
"""

from __future__ import annotations

import jax

import pallas_kernels


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool, sliding_window: int | None,
              softcap: float | None, impl: str) -> jax.Array:
  """Scaled dot-product attention.

  q: (batch, seq, heads, head_dim); k, v: (batch, seq, kv_heads, head_dim). Returns q's shape and dtype.
  """
  return pallas_kernels.flash_attention(q, k, v, causal=causal, sliding_window=sliding_window, softcap=softcap,
                                        impl=impl)


def ssd_scan(x: jax.Array, dt: jax.Array, a: jax.Array, b: jax.Array, c: jax.Array, d: jax.Array, *,
             chunk_size: int, impl: str) -> jax.Array:
  """Mamba-2 scan h_t = exp(dt_t a) h_{t-1} + dt_t x_t b_t^T, y_t = h_t c_t + d x_t.

  x: (batch, seq, heads, head_dim); dt: (batch, seq, heads) positive; a: (heads,) negative;
  b, c: (batch, seq, groups, state); d: (heads,). Returns y like x.
  """
  return pallas_kernels.ssd(x, dt, a, b, c, D=d, chunk_size=chunk_size, impl=impl)
