"""`SequenceClassifier`: a layout-built encoder with pooling and a classification head (for LRA tasks).

- Pooling "mean": the average of the final states over non-padding positions (tokens != pad_id).
  Pooling "cls": a learned CLS vector is prepended to the sequence and its final state is used; with bidirectional
  attention it sees the whole input, but a causal primitive (Mamba-2) at position 0 sees nothing, so prefer
  "mean" for layouts with S layers.
- Single tower: logits = W2 relu(W1 pooled). Dual tower (two documents, e.g. LRA Retrieval): both documents go
  through the same encoder and the head sees [u, v, u * v, u - v] (as the LRA reference models do).
- Attention is bidirectional by default (`causal=False`), as in the LRA reference Transformer. Padding
  positions are excluded from pooling but are visible to attention as keys.

Initialisation: embeddings and head matrices Normal(0, init_std), head biases zero.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import along_last, normal, param, project
from aira_jax.layout import Layout, as_layout
from aira_jax.model_config import ModelConfig
from aira_jax.models.stack import build_layers, run_layers

Pooling = Literal["mean", "cls"]


class SequenceClassifier(nnx.Module):
  """Classifies one token sequence, or a pair of them when `dual=True`.

  Args:
    layout: a `Layout` or its text.
    config: widths and options.
    num_classes: output classes (>= 2).
    pooling: "mean" or "cls".
    dual: two-document input (dual encoder with shared weights).
    causal: causal attention (default False: bidirectional).
    pad_id: token id treated as padding in mean pooling.
  """

  def __init__(self, layout: Layout | str, config: ModelConfig, *, num_classes: int, rngs: nnx.Rngs,
               pooling: Pooling = "mean", dual: bool = False, causal: bool = False, pad_id: int = 0):
    if num_classes < 2:
      raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if pooling not in ("mean", "cls"):
      raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    self.layout = as_layout(layout)
    self.config = config
    self.pooling = pooling
    self.dual = dual
    self.pad_id = pad_id
    d, dtype, std = config.d_model, config.stored_dtype, config.init_std
    self.embed = param(normal(rngs, (config.vocab_size, d), std, dtype), ("vocab", "embed"))
    if pooling == "cls":
      self.cls = param(normal(rngs, (d,), std, dtype), ("embed",))
    self.layers = build_layers(self.layout, config, rngs=rngs, causal=causal)
    self.final_norm = RMSNorm(d, eps=config.norm_eps, param_dtype=dtype)
    features = 4 * d if dual else d
    self.w_hidden = param(normal(rngs, (features, d), std, dtype), (None, "embed"))
    self.b_hidden = param(jnp.zeros((d,), dtype), ("embed",))
    self.w_out = param(normal(rngs, (d, num_classes), std, dtype), ("embed", None))
    self.b_out = param(jnp.zeros((num_classes,), dtype), (None,))

  def encode(self, tokens: jax.Array) -> jax.Array:
    """tokens (batch, seq) int -> pooled features (batch, d_model) float32."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be (batch, seq), got shape {tokens.shape}")
    x = jnp.take(self.embed[...], tokens, axis=0).astype(self.config.compute_dtype)
    if self.pooling == "cls":
      cls = jnp.broadcast_to(self.cls[...].astype(x.dtype), (x.shape[0], 1, x.shape[2]))
      x = jnp.concatenate([cls, x], axis=1)
    x = self.final_norm(run_layers(self.layers, x, None, remat=self.config.remat)).astype(jnp.float32)
    if self.pooling == "cls":
      return x[:, 0]
    keep = (tokens != self.pad_id).astype(jnp.float32)[..., None]
    return jnp.sum(x * keep, axis=1) / jnp.maximum(jnp.sum(keep, axis=1), 1.0)

  def __call__(self, tokens: jax.Array, other_tokens: jax.Array | None = None) -> jax.Array:
    """Logits (batch, num_classes) float32. `other_tokens` (batch, seq2) is required exactly when dual."""
    if self.dual != (other_tokens is not None):
      raise ValueError("a dual-tower classifier takes two token arrays, a single-tower one takes one")
    features = self.encode(tokens)
    if self.dual:
      other = self.encode(other_tokens)
      features = jnp.concatenate([features, other, features * other, features - other], axis=-1)
    hidden = jax.nn.relu(project(features, self.w_hidden[...], "bf,fd->bd") + along_last(self.b_hidden[...], 2))
    return project(hidden, self.w_out[...], "bd,dc->bc") + along_last(self.b_out[...], 2)
