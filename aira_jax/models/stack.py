"""Building the stack of primitive layers for a layout, shared by the language model and the classifier."""

from __future__ import annotations

import jax
from flax import nnx

from aira_jax import primitives
from aira_jax.layout import Layout
from aira_jax.model_config import ModelConfig


def build_layers(layout: Layout, config: ModelConfig, *, rngs: nnx.Rngs, causal: bool = True) -> nnx.List:
  """One layer per symbol of `layout`, bottom first, each built by its registered primitive class."""
  return nnx.List([
      primitives.get_primitive(symbol).layer_class()(config, depth=layout.depth, rngs=rngs, causal=causal)
      for symbol in layout
  ])


def _call_layer(layer: nnx.Module, x: jax.Array, positions: jax.Array | None) -> jax.Array:
  return layer(x, positions=positions)


def run_layers(layers: nnx.List, x: jax.Array, positions: jax.Array | None, *, remat: bool = False) -> jax.Array:
  """Applies the layers in order to x (batch, seq, d_model).

  remat: rematerialise each layer in the backward pass (`nnx.remat`): only the layer's input is kept for the
  gradient and its activations are recomputed, trading compute for memory. Outputs and gradients are the same.
  """
  call = nnx.remat(_call_layer) if remat else _call_layer
  for layer in layers:
    x = call(layer, x, positions)
  return x
