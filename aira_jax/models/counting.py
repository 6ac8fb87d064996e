"""Exact parameter counts and analytic FLOPs per token for a (layout, config), summed over its primitives.

Each primitive carries its own formulas (`aira_jax.primitives`: `param_count` and `flops` of its
registration, next to its layer: `aira_jax/layers/{attention,mlp,mamba2}.py` for A, M, S); this module sums
them over the layout's layers and adds the embedding, final norm and head. Parameters are exact (tests check
them against the real parameter tree).

FLOPs count a multiply-add as 2 and only matrix products (the elementwise work of norms, activations and
softmax is left out; it is a few percent at these widths). Per token, forward, the built-in primitives count:
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

from aira_jax import primitives
from aira_jax.layout import Layout, as_layout
from aira_jax.model_config import ModelConfig


def layer_param_count(symbol: str, config: ModelConfig) -> int:
  """Parameters of one layer of kind `symbol`, its pre-norm included (the primitive's own formula)."""
  return primitives.get_primitive(symbol).param_count(config)


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
  per_kind = {s: layer_param_count(s, config) for s in set(layout)}
  return ParamCount(
      embedding=config.vocab_size * config.d_model,
      layers=tuple(per_kind[s] for s in layout),
      final_norm=config.d_model,
      head=0 if config.tie_embeddings else config.d_model * config.vocab_size,
  )


def attention_context(config: ModelConfig, seq_len: int, causal_context: bool) -> float:
  """Keys scored per query on average (see the module docstring): the attention layer's own
  `aira_jax.layers.attention.attention_context`, imported on call to keep this module free of layer imports."""
  from aira_jax.layers import attention  # pylint: disable=import-outside-toplevel
  return attention.attention_context(config, seq_len, causal_context)


def layer_flops_per_token(symbol: str, config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """Forward matrix-product FLOPs per token of one layer of kind `symbol` (the primitive's own formula)."""
  return primitives.get_primitive(symbol).flops_per_token(config, seq_len, causal_context=causal_context)


def flops_per_token(layout: Layout | str, config: ModelConfig, seq_len: int, *, training: bool = False,
                    causal_context: bool = False) -> float:
  """Forward (or, with `training`, forward + backward = 3x) FLOPs per token of a LanguageModel."""
  layout = as_layout(layout)
  per_kind = {s: layer_flops_per_token(s, config, seq_len, causal_context=causal_context) for s in set(layout)}
  forward = sum(per_kind[s] for s in layout)
  forward += 2 * config.d_model * config.vocab_size
  return 3 * forward if training else forward
