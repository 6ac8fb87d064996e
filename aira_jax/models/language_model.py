"""`LanguageModel`: token embedding, the layout's layers in order, a final RMSNorm and the output head.

Logits are float32 (batch, seq, vocab). The head is the embedding transposed when `tie_embeddings`, otherwise
its own matrix (Normal(0, init_std)); an optional soft-cap maps logits to cap * tanh(logits / cap) (Gemma 2,
autoresearch). Embedding init Normal(0, init_std).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import normal, param
from aira_jax.layout import Layout, as_layout
from aira_jax.model_config import ModelConfig
from aira_jax.models.stack import build_layers, run_layers


def soft_cap(logits: jax.Array, cap: float | None) -> jax.Array:
  """cap * tanh(logits / cap), or logits unchanged when cap is None."""
  return logits if cap is None else cap * jnp.tanh(logits / cap)


class LanguageModel(nnx.Module):
  """A causal language model whose layers follow `layout`.

  Args:
    layout: a `Layout` or its text ("AMAM", "2A+5M").
    config: widths and options (`ModelConfig` or a preset from `aira_jax.models.presets`).
    rngs: parameter initialisation randomness, e.g. `nnx.Rngs(0)`.
  """

  def __init__(self, layout: Layout | str, config: ModelConfig, *, rngs: nnx.Rngs):
    self.layout = as_layout(layout)
    self.config = config
    dtype = config.stored_dtype
    self.embed = param(normal(rngs, (config.vocab_size, config.d_model), config.init_std, dtype), ("vocab", "embed"))
    self.layers = build_layers(self.layout, config, rngs=rngs, causal=True)
    self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps, param_dtype=dtype)
    if not config.tie_embeddings:
      self.head = param(normal(rngs, (config.d_model, config.vocab_size), config.init_std, dtype), ("embed", "vocab"))

  def __call__(self, tokens: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    """tokens: (batch, seq) int32 -> logits (batch, seq, vocab) float32."""
    x = self.hidden_states(tokens, positions=positions)
    head = self.embed[...].T if self.config.tie_embeddings else self.head[...]
    logits = jnp.einsum("bsd,dv->bsv", x, head.astype(x.dtype), preferred_element_type=jnp.float32)
    return soft_cap(logits, self.config.logit_softcap)

  def hidden_states(self, tokens: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    """The final-normed residual stream (batch, seq, d_model) in the compute dtype."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be (batch, seq), got shape {tokens.shape}")
    x = jnp.take(self.embed[...], tokens, axis=0).astype(self.config.compute_dtype)
    x = run_layers(self.layers, x, positions, remat=self.config.remat)
    return self.final_norm(x)
