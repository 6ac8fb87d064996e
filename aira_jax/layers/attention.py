"""The attention primitive (A): a pre-norm residual layer of causal multi-head attention.

Grouped KV heads (num_kv_heads divides num_heads), RoPE on queries and keys, optional QK-norm (RMSNorm per head
on q and k, as in OLMo-2 / Gemma 2), optional sliding window and score soft-capping. The scores are computed by
`aira_jax.layers.kernels.attention` (the kernel seam).

Initialisation: q, k, v projections Normal(0, init_std); the output projection Normal(0, init_std / sqrt(2 *
depth)) (GPT-2 scaled init); norm scales ones.
"""

from __future__ import annotations

import jax
from flax import nnx

from aira_jax.layers import kernels
from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import normal, output_std, param, project
from aira_jax.layers.rope import apply_rope, default_rope_angles, rope_angles
from aira_jax.model_config import ModelConfig


class AttentionLayer(nnx.Module):
  """x + Attention(RMSNorm(x)) on (batch, seq, d_model).

  Args:
    config: widths and options.
    depth: number of layers in the model (scales the output projection's init).
    causal: False gives bidirectional attention (encoders for classification).
  """

  def __init__(self, config: ModelConfig, *, depth: int, rngs: nnx.Rngs, causal: bool = True):
    d, h, kv, hd = config.d_model, config.num_heads, config.resolved_kv_heads, config.resolved_head_dim
    dtype = config.stored_dtype
    self.config = config
    self.causal = causal
    self.norm = RMSNorm(d, eps=config.norm_eps, param_dtype=dtype)
    self.wq = param(normal(rngs, (d, h, hd), config.init_std, dtype), ("embed", "heads", "head_dim"))
    self.wk = param(normal(rngs, (d, kv, hd), config.init_std, dtype), ("embed", "kv_heads", "head_dim"))
    self.wv = param(normal(rngs, (d, kv, hd), config.init_std, dtype), ("embed", "kv_heads", "head_dim"))
    self.wo = param(normal(rngs, (h, hd, d), output_std(config.init_std, depth), dtype),
                    ("heads", "head_dim", "embed"))
    if config.qk_norm:
      self.q_norm = RMSNorm(hd, eps=config.norm_eps, axis_name="head_dim", param_dtype=dtype)
      self.k_norm = RMSNorm(hd, eps=config.norm_eps, axis_name="head_dim", param_dtype=dtype)

  def __call__(self, x: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    """x: (batch, seq, d_model) in the compute dtype; positions: (batch, seq) int, default 0..seq-1."""
    config = self.config
    h = self.norm(x)
    q = project(h, self.wq[...], "bsd,dnk->bsnk")
    k = project(h, self.wk[...], "bsd,dnk->bsnk")
    v = project(h, self.wv[...], "bsd,dnk->bsnk")
    if config.qk_norm:
      q, k = self.q_norm(q), self.k_norm(k)
    if positions is None:  # 0..seq-1: constant angles, no sin / cos in the step
      cos, sin = default_rope_angles(x.shape[1], config.resolved_head_dim, config.rope_theta)
    else:
      cos, sin = rope_angles(positions, config.resolved_head_dim, config.rope_theta)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    out = kernels.attention(q, k, v, causal=self.causal, sliding_window=config.sliding_window,
                            softcap=config.attention_softcap, impl=config.attention_impl)
    return x + project(out, self.wo[...], "bsnk,nkd->bsd")


def attention_param_count(config: ModelConfig) -> int:
  """Parameters of one AttentionLayer: norm, q / k / v / o projections, and the QK-norm scales if any."""
  d, h, kv, hd = config.d_model, config.num_heads, config.resolved_kv_heads, config.resolved_head_dim
  return d + d * h * hd + 2 * d * kv * hd + h * hd * d + (2 * hd if config.qk_norm else 0)


def attention_context(config: ModelConfig, seq_len: int, causal_context: bool) -> float:
  """Keys scored per query on average: `seq_len` (the dense computation, which the XLA reference path and the
  PaLM / Chinchilla convention count), or with `causal_context` the causal average (seq_len + 1) / 2, capped
  by the sliding window (what a block-skipping flash kernel roughly does)."""
  if not causal_context:
    return float(seq_len)
  window = config.sliding_window or seq_len
  return sum(min(t + 1, window) for t in range(seq_len)) / seq_len


def attention_flops_per_token(config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """Forward matrix-product FLOPs per token: 2 * (d*h*hd + 2*d*kv*hd + h*hd*d) for the projections plus
  4 * h * hd * context for the scores (QK^T) and values (AV); context from `attention_context`."""
  d, h, kv, hd = config.d_model, config.num_heads, config.resolved_kv_heads, config.resolved_head_dim
  projections = 2 * (d * h * hd + 2 * d * kv * hd + h * hd * d)
  return projections + 4 * h * hd * attention_context(config, seq_len, causal_context)
