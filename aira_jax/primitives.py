"""The primitive alphabet: one registry of the layer kinds a layout may use, each carrying its behaviour.

A primitive is a one-letter symbol (A = attention, M = MLP, S = Mamba-2 SSM) with a name, a description for
agents and reports, and the import paths ("module:attribute") of three things that together are everything the
rest of the package needs to know about it:

  layer       the Flax NNX layer class. Constructor `cls(config: ModelConfig, *, depth: int, rngs: nnx.Rngs,
              causal: bool = True)`: `depth` is the model's layer count (for depth-scaled init of output
              projections); `causal=False` asks for a bidirectional layer (the classifier's encoders), a layer
              that mixes no positions or is causal by construction may ignore it. Call `layer(x, *,
              positions: jax.Array | None = None) -> jax.Array`: x is (batch, seq, d_model) in
              `config.compute_dtype`, the result has x's shape and dtype (the layer is pre-norm residual:
              x + f(norm(x))); positions is (batch, seq) int, None meaning 0..seq-1, and may be ignored.
              Parameters are `nnx.Param`s made with `aira_jax.layers.params.param(value, logical_axes)`
              (logical names absent from `aira_jax.sharding.LOGICAL_AXIS_RULES` are replicated); every
              instance built from one config must have the same structure, so the switch model can stack
              `depth` of them.
  param_count `fn(config: ModelConfig) -> int`: the exact number of parameters of one layer, its norm included
              (tests compare it with the real parameter tree).
  flops       `fn(config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float`: forward
              matrix-product FLOPs per token of one layer at sequence length `seq_len` (multiply-add = 2,
              elementwise work left out); `causal_context` asks for the causal average context instead of the
              dense one where the layer's cost depends on it (see `aira_jax.models.counting`).

`register_primitive(...)` is the one call that adds a primitive everywhere: `Layout` parsing and search spaces,
`LanguageModel` and `SequenceClassifier` (models/stack.py), the switch model of the compose evaluator
(compose/switch_model.py), parameter and FLOP counting (models/counting.py) and so the scale stage's budgets
(compose/flops.py, every method). Nothing is imported when registering or parsing layouts: the paths are
resolved on first use, so `import aira_jax.primitives` imports neither JAX nor Flax.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Iterable, Iterator


def _resolve(path: str):
  """The attribute a "module:attribute" path names, imported now."""
  module_name, attribute = path.split(":")
  return getattr(importlib.import_module(module_name), attribute)


@dataclasses.dataclass(frozen=True)
class Primitive:
  """One layer kind; see the module docstring for the contract each path must meet.

  Attributes:
    symbol: one upper-case letter used in layout text ("A").
    name: short identifier ("attention").
    description: one line for agents and reports.
    layer_path: "module:ClassName" of the Flax NNX layer.
    param_count_path: "module:function" giving the parameters of one layer from a ModelConfig.
    flops_path: "module:function" giving one layer's forward matrix-product FLOPs per token.
  """

  symbol: str
  name: str
  description: str
  layer_path: str
  param_count_path: str
  flops_path: str

  def layer_class(self) -> type:
    """Imports and returns the layer class."""
    return _resolve(self.layer_path)

  def param_count(self, config) -> int:
    """Parameters of one layer of this kind under `config`, its norm included."""
    return int(_resolve(self.param_count_path)(config))

  def flops_per_token(self, config, seq_len: int, *, causal_context: bool = False) -> float:
    """Forward matrix-product FLOPs per token of one layer of this kind at `seq_len`."""
    return float(_resolve(self.flops_path)(config, seq_len, causal_context=causal_context))


_REGISTRY: dict[str, Primitive] = {}


def _check_path(what: str, path: str) -> None:
  module_name, _, attribute = path.partition(":")
  if not module_name or not attribute or ":" in attribute:
    raise ValueError(f"{what} must be 'module:attribute', got {path!r}")


def register_primitive(symbol: str, name: str, description: str, layer_path: str, *, param_count: str,
                       flops: str) -> Primitive:
  """Adds a primitive to the alphabet (see the module docstring for what each path must provide).

  Raises ValueError for a malformed or already-taken symbol, or a path that is not "module:attribute". The
  paths are not imported here; a wrong one fails on first use.
  """
  if len(symbol) != 1 or not symbol.isalpha() or not symbol.isupper():
    raise ValueError(f"a primitive symbol is one upper-case letter, got {symbol!r}")
  if symbol in _REGISTRY:
    raise ValueError(f"primitive symbol {symbol!r} is already registered as {_REGISTRY[symbol].name!r}")
  for what, path in (("layer_path", layer_path), ("param_count", param_count), ("flops", flops)):
    _check_path(what, path)
  primitive = Primitive(symbol, name, description, layer_path, param_count, flops)
  _REGISTRY[symbol] = primitive
  return primitive


def unregister_primitive(symbol: str) -> Primitive:
  """Removes a primitive and returns it (for tests that register their own; the built-ins stay). ValueError
  when `symbol` is not registered."""
  primitive = get_primitive(symbol)
  del _REGISTRY[symbol]
  return primitive


@contextlib.contextmanager
def registered_primitive(symbol: str, name: str, description: str, layer_path: str, *, param_count: str,
                         flops: str) -> Iterator[Primitive]:
  """`register_primitive(...)` for the duration of a `with` block, unregistered on exit (for tests)."""
  primitive = register_primitive(symbol, name, description, layer_path, param_count=param_count, flops=flops)
  try:
    yield primitive
  finally:
    if _REGISTRY.get(symbol) is primitive:
      del _REGISTRY[symbol]


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
                   "aira_jax.layers.attention:AttentionLayer",
                   param_count="aira_jax.layers.attention:attention_param_count",
                   flops="aira_jax.layers.attention:attention_flops_per_token")
register_primitive("M", "mlp", "position-wise gated MLP (SwiGLU; ReLU^2 optional)",
                   "aira_jax.layers.mlp:MLPLayer",
                   param_count="aira_jax.layers.mlp:mlp_param_count",
                   flops="aira_jax.layers.mlp:mlp_flops_per_token")
register_primitive("S", "mamba2", "Mamba-2 selective state-space layer (SSD scan, scalar decay per head)",
                   "aira_jax.layers.mamba2:Mamba2Layer",
                   param_count="aira_jax.layers.mamba2:mamba2_param_count",
                   flops="aira_jax.layers.mamba2:mamba2_flops_per_token")
