"""Exact parameter counts and analytic FLOPs per token for a (layout, config).

Parameters are counted from the formulas of each layer (tests check them against the real parameter tree).

FLOPs count a multiply-add as 2 and only matrix products (the elementwise work of norms, activations and
softmax is left out; it is a few percent at these widths). Per token, forward:
  A: 2 * (d*h*hd + 2*d*kv*hd + h*hd*d)            projections
     + 4 * h * hd * context                       scores (QK^T) and values (AV)
  M: 2 * 3*d*f (SwiGLU) or 2 * 2*d*f (ReLU^2)
  S: 2 * (2*d*e + 2*d*g*n + d*H + e*d)             projections (e = inner width, H heads, g groups, n state)
     + 2 * width * (e + 2*g*n)                    depthwise convolution
     + 2 * Q * (g*n + e) + 4 * e * n               chunked SSD: within-chunk scores and outputs (chunk Q),
                                                   chunk states and their read-out
  head: 2 * d * vocab.
`context` is the number of keys each query is scored against: `seq_len` (the dense computation, which is what
the XLA reference path and the PaLM / Chinchilla convention count), or with `causal_context=True` the causal
average (seq_len + 1) / 2, capped by the sliding window (what a block-skipping flash kernel roughly does).
Training FLOPs are 3x the forward (the backward pass is two matrix products per forward one).
"""

from __future__ import annotations

import dataclasses

from aira_jax.layout import Layout, as_layout
from aira_jax.models.config import ModelConfig


def layer_param_count(symbol: str, config: ModelConfig) -> int:
  """Parameters of one layer of kind `symbol`, its pre-norm included."""
  d = config.d_model
  if symbol == "A":
    h, kv, hd = config.num_heads, config.resolved_kv_heads, config.resolved_head_dim
    return d + d * h * hd + 2 * d * kv * hd + h * hd * d + (2 * hd if config.qk_norm else 0)
  if symbol == "M":
    matrices = 3 if config.mlp_activation == "swiglu" else 2
    return d + matrices * d * config.ffn_dim
  if symbol == "S":
    e, heads, bc = config.ssm_inner, config.ssm_heads, config.ssm_groups * config.ssm_state_dim
    conv_channels = e + 2 * bc
    return (d + 2 * d * e + 2 * d * bc + d * heads + (config.ssm_conv_width + 1) * conv_channels + 3 * heads + e
            + e * d)
  raise ValueError(f"no parameter formula for primitive {symbol!r}; add one in aira_jax/models/counting.py")


@dataclasses.dataclass(frozen=True)
class ParamCount:
  """Parameters of a language model by part. `total` counts a tied embedding once."""

  embedding: int
  layers: tuple[int, ...]
  final_norm: int
  head: int

  @property
  def total(self) -> int:
    return self.embedding + sum(self.layers) + self.final_norm + self.head

  @property
  def non_embedding(self) -> int:
    """Parameters outside the embedding and the output head (the N of scaling laws, Kaplan et al.)."""
    return sum(self.layers) + self.final_norm


def count_params(layout: Layout | str, config: ModelConfig) -> ParamCount:
  """Exact parameter count of `LanguageModel(layout, config)`."""
  layout = as_layout(layout)
  return ParamCount(
      embedding=config.vocab_size * config.d_model,
      layers=tuple(layer_param_count(s, config) for s in layout),
      final_norm=config.d_model,
      head=0 if config.tie_embeddings else config.d_model * config.vocab_size,
  )


def attention_context(config: ModelConfig, seq_len: int, causal_context: bool) -> float:
  """Keys scored per query on average (see the module docstring)."""
  if not causal_context:
    return float(seq_len)
  window = config.sliding_window or seq_len
  return sum(min(t + 1, window) for t in range(seq_len)) / seq_len


def layer_flops_per_token(symbol: str, config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """Forward matrix-product FLOPs per token of one layer."""
  d = config.d_model
  if symbol == "A":
    h, kv, hd = config.num_heads, config.resolved_kv_heads, config.resolved_head_dim
    projections = 2 * (d * h * hd + 2 * d * kv * hd + h * hd * d)
    return projections + 4 * h * hd * attention_context(config, seq_len, causal_context)
  if symbol == "M":
    matrices = 3 if config.mlp_activation == "swiglu" else 2
    return 2 * matrices * d * config.ffn_dim
  if symbol == "S":
    e, heads, n = config.ssm_inner, config.ssm_heads, config.ssm_state_dim
    gn = config.ssm_groups * n
    chunk = min(config.ssm_chunk_size, seq_len)
    projections = 2 * (2 * d * e + 2 * d * gn + d * heads + e * d)
    conv = 2 * config.ssm_conv_width * (e + 2 * gn)
    scan = 2 * chunk * (gn + e) + 4 * e * n
    return projections + conv + scan
  raise ValueError(f"no FLOP formula for primitive {symbol!r}; add one in aira_jax/models/counting.py")


def flops_per_token(layout: Layout | str, config: ModelConfig, seq_len: int, *, training: bool = False,
                    causal_context: bool = False) -> float:
  """Forward (or, with `training`, forward + backward = 3x) FLOPs per token of a LanguageModel."""
  layout = as_layout(layout)
  forward = sum(layer_flops_per_token(s, config, seq_len, causal_context=causal_context) for s in layout)
  forward += 2 * config.d_model * config.vocab_size
  return 3 * forward if training else forward
