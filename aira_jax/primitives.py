"""The primitive alphabet: one registry of the layer kinds a layout may use.

A primitive is a one-letter symbol (A = attention, M = MLP, S = Mamba-2 SSM) with a name, a description for
agents and reports, and the import path of the Flax NNX layer that implements it. Adding a primitive is one
`register_primitive(...)` call: `Layout` parsing, search spaces and model building all read this registry.
The layer class is imported lazily, so parsing layouts never imports Flax.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class Primitive:
  """One layer kind.

  Attributes:
    symbol: one upper-case letter used in layout text ("A").
    name: short identifier ("attention").
    description: one line for agents and reports.
    layer_path: "module:ClassName" of the Flax NNX layer; its constructor is
      `cls(config: ModelConfig, *, depth: int, rngs: nnx.Rngs)` and it maps (batch, seq, d_model) to the same.
  """

  symbol: str
  name: str
  description: str
  layer_path: str

  def layer_class(self):
    """Imports and returns the layer class."""
    module_name, class_name = self.layer_path.split(":")
    return getattr(importlib.import_module(module_name), class_name)


_REGISTRY: dict[str, Primitive] = {}


def register_primitive(symbol: str, name: str, description: str, layer_path: str) -> Primitive:
  """Adds a primitive to the alphabet. Raises ValueError for a malformed or already-taken symbol."""
  if len(symbol) != 1 or not symbol.isalpha() or not symbol.isupper():
    raise ValueError(f"a primitive symbol is one upper-case letter, got {symbol!r}")
  if symbol in _REGISTRY:
    raise ValueError(f"primitive symbol {symbol!r} is already registered as {_REGISTRY[symbol].name!r}")
  primitive = Primitive(symbol, name, description, layer_path)
  _REGISTRY[symbol] = primitive
  return primitive


def get_primitive(symbol: str) -> Primitive:
  """Returns the registered primitive for `symbol`; ValueError naming the alphabet otherwise."""
  try:
    return _REGISTRY[symbol]
  except KeyError:
    raise ValueError(f"unknown primitive {symbol!r}; the alphabet is {alphabet()}") from None


def alphabet() -> str:
  """All registered symbols in registration order, e.g. "AMS"."""
  return "".join(_REGISTRY)


def normalize_space(space: str | Iterable[str] | None) -> frozenset[str]:
  """A search space as a set of symbols: "AM", "{A,M}", ["A", "M"], or None for the whole alphabet."""
  if space is None:
    return frozenset(_REGISTRY)
  if isinstance(space, str):
    symbols = [c for c in space if c not in "{}, \t"]
  else:
    symbols = list(space)
  if not symbols:
    raise ValueError(f"empty search space {space!r}; give symbols from {alphabet()}, e.g. 'AM'")
  for symbol in symbols:
    get_primitive(symbol)
  return frozenset(symbols)


register_primitive("A", "attention", "causal multi-head attention with grouped KV heads and RoPE",
                   "aira_jax.layers.attention:AttentionLayer")
register_primitive("M", "mlp", "position-wise gated MLP (SwiGLU; ReLU^2 optional)",
                   "aira_jax.layers.mlp:MLPLayer")
register_primitive("S", "mamba2", "Mamba-2 selective state-space layer (SSD scan, scalar decay per head)",
                   "aira_jax.layers.mamba2:Mamba2Layer")
