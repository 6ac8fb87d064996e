"""`SwitchLanguageModel`: one compiled program for every layout of a (depth, config, search space).

A search evaluates thousands of layouts of the same depth and width. A dedicated `LanguageModel` per layout
costs a fresh compile each time. Here every layer holds the parameters of every primitive of the space, stacked
with a leading "layers" axis per primitive; the layer kinds are an int32 array *argument* (traced, not static);
each layer is `lax.switch(kind, branches, x)` over the primitives, and the stacked layers are run by
`lax.scan`. Each branch is wrapped in `jax.checkpoint`, so the untaken branches' residuals are not kept for the
backward pass. What this buys per evaluation is measured by `experiments/bench/search_throughput.py` (switch
against dedicated mode; RESULTS.md).

Layer i of kind k reads slot i of primitive space[k]'s stack; the other primitives' slot i is unused for that
layout and gets exactly zero gradient. With the dedicated model's parameters in the used slots
(`switch_params`, `load_dedicated`) the switch model computes the dedicated model's function: the same logits
and loss up to floating-point order (tests/aira_jax/compose/switch_model_test.py). `to_dedicated` copies them
back.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aira_jax import primitives
from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import normal, param
from aira_jax.layout import Layout, as_layout
from aira_jax.model_config import ModelConfig
from aira_jax.models.language_model import LanguageModel, soft_cap
from aira_jax.train.step import Batch, Metrics, lm_loss

LAYERS_AXIS = "layers"
"""Logical name of the stacked parameters' leading axis. Absent from `aira_jax.sharding.LOGICAL_AXIS_RULES`,
so it is replicated (every device holds every slot; the other axes shard as in a dedicated model)."""


def check_space(space: str | Iterable[str]) -> str:
  """The space as a string of distinct registered symbols in the given order ("AM"); kind k is space[k]."""
  symbols = "".join(c for c in space if c not in "{}, \t")
  if not symbols or len(set(symbols)) != len(symbols):
    raise ValueError(f"a switch space needs distinct symbols, e.g. 'AM'; got {space!r}")
  for symbol in symbols:
    primitives.get_primitive(symbol)
  return symbols


def layout_kinds(layout: Layout | str, space: str, depth: int | None = None) -> np.ndarray:
  """The layer kinds of `layout` as indices into `space`: "AMMA" with space "AM" -> [0, 1, 1, 0] (int32).

  Raises ValueError when a layer's primitive is outside `space` or `depth` is given and differs.
  """
  layout, space = as_layout(layout), check_space(space)
  if depth is not None and layout.depth != depth:
    raise ValueError(f"layout {layout.text!r} has {layout.depth} layers; this switch model has {depth}")
  layout.check_space(space)
  return np.array([space.index(symbol) for symbol in layout], np.int32)


def stack_layers(layers: list[nnx.Module]) -> nnx.Module:
  """One module of the layers' (common) class whose every variable is theirs stacked on a new leading axis,
  annotated with the logical name "layers" before the layer's own axis names."""
  def stack(*variables):
    first = variables[0]
    axes = first.get_metadata().get("out_sharding") or (None,) * first.get_value().ndim
    value = jnp.stack([v.get_value() for v in variables])
    return type(first)(value, out_sharding=(LAYERS_AXIS,) + tuple(axes), eager_sharding=False)

  states = [nnx.state(layer) for layer in layers]
  stacked = jax.tree.map(stack, *states, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.merge(nnx.graphdef(layers[0]), stacked)


def run_switch_layers(stacks: nnx.List, kinds: jax.Array, x: jax.Array, positions: jax.Array | None, *,
                      remat: bool = True) -> jax.Array:
  """Applies layer i = primitive kinds[i] (slot i of stacks[kinds[i]]) for i = 0..depth-1 to x.

  Args:
    stacks: one stacked layer per primitive of the space (leading axis = depth).
    kinds: (depth,) int32 indices into `stacks` (out-of-range values are clamped by `lax.switch`).
    x: (batch, seq, d_model) in the compute dtype; positions: (batch, seq) int or None.
    remat: wrap each branch in `jax.checkpoint`, so only the taken branch's input is kept for the gradient.
  """
  graphdefs, states = zip(*(nnx.split(stack) for stack in stacks))

  def branch(k):
    def apply(x, state, positions):
      return nnx.merge(graphdefs[k], state)(x, positions=positions)

    apply = jax.checkpoint(apply) if remat else apply
    return lambda x, layer_states, positions: apply(x, layer_states[k], positions)

  branches = [branch(k) for k in range(len(graphdefs))]

  def body(x, inputs):
    kind, layer_states = inputs
    return jax.lax.switch(kind, branches, x, layer_states, positions), None

  x, _ = jax.lax.scan(body, x, (kinds, tuple(states)))
  return x


class SwitchLanguageModel(nnx.Module):
  """A causal language model of `depth` layers whose layer kinds are a call argument.

  Args:
    config: widths and options, as for `LanguageModel`.
    depth: number of layers; also scales the output projections' init as in a dedicated model.
    space: the primitives a layer may be, e.g. "AM" or "AMS"; kind k means space[k].
    rngs: parameter initialisation randomness.
    remat: checkpoint each switch branch (default; without it the untaken branches' residuals are kept).
  Parameters: embed (vocab, d_model), stacks[k] (primitive space[k]'s layer with every parameter stacked to
  (depth, ...)), final_norm, and head (d_model, vocab) when embeddings are untied.
  """

  def __init__(self, config: ModelConfig, depth: int, space: str = "AM", *, rngs: nnx.Rngs, remat: bool = True):
    if depth < 1:
      raise ValueError(f"depth must be at least 1, got {depth}")
    self.config, self.depth, self.space, self.remat = config, depth, check_space(space), remat
    dtype = config.stored_dtype
    self.embed = param(normal(rngs, (config.vocab_size, config.d_model), config.init_std, dtype), ("vocab", "embed"))
    self.stacks = nnx.List([
        stack_layers([primitives.get_primitive(symbol).layer_class()(config, depth=depth, rngs=rngs, causal=True)
                      for _ in range(depth)])
        for symbol in self.space
    ])
    self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps, param_dtype=dtype)
    if not config.tie_embeddings:
      self.head = param(normal(rngs, (config.d_model, config.vocab_size), config.init_std, dtype), ("embed", "vocab"))

  def kinds(self, layout: Layout | str) -> np.ndarray:
    """`layout_kinds` for this model's space and depth."""
    return layout_kinds(layout, self.space, self.depth)

  def __call__(self, tokens: jax.Array, kinds: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    """tokens: (batch, seq) int32; kinds: (depth,) int32 indices into `space` -> logits (batch, seq, vocab)
    float32."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be (batch, seq), got shape {tokens.shape}")
    kinds = jnp.asarray(kinds, jnp.int32)
    if kinds.shape != (self.depth,):
      raise ValueError(f"kinds must have shape ({self.depth},), got {kinds.shape}; see `layout_kinds`")
    x = jnp.take(self.embed[...], tokens, axis=0).astype(self.config.compute_dtype)
    x = self.final_norm(run_switch_layers(self.stacks, kinds, x, positions, remat=self.remat))
    head = self.embed[...].T if self.config.tie_embeddings else self.head[...]
    logits = jnp.einsum("bsd,dv->bsv", x, head.astype(x.dtype), preferred_element_type=jnp.float32)
    return soft_cap(logits, self.config.logit_softcap)


def switch_loss(params: nnx.State, graphdef: nnx.GraphDef, kinds: jax.Array, batch: Batch,
                z_loss: float = 0.0) -> tuple[jax.Array, Metrics]:
  """`lm_loss` of the switch model (`nnx.split(model)`) on batch {"inputs", "targets"}: (batch, seq) int32,
  for the layout `kinds` ((depth,) int32, a traced argument: one compile serves every layout)."""
  model = nnx.merge(graphdef, params)
  return lm_loss(model(batch["inputs"], kinds), batch["targets"], z_loss)


def switch_path(path: tuple, kinds: np.ndarray) -> tuple[tuple, int | None]:
  """Where a dedicated model's parameter lives in the switch model: ("layers", i, *rest) -> (("stacks",
  kinds[i], *rest), i); any other path (embed, final_norm, head) -> (path, None)."""
  if path[0] == "layers":
    return ("stacks", int(kinds[path[1]])) + tuple(path[2:]), int(path[1])
  return tuple(path), None


def switch_params(dedicated: nnx.State, abstract: nnx.State, kinds: np.ndarray) -> nnx.State:
  """Switch-model parameters with the structure of `abstract` (the switch model's state, e.g. of
  `nnx.eval_shape`) holding `dedicated`'s (a `LanguageModel`'s state for the layout `kinds`) in the slots the
  layout uses and zeros in the others, which the layout never reads (they get zero gradient). Built this way,
  a switch model computes exactly the dedicated model's function (`load_dedicated` without a concrete switch
  model)."""
  values: dict[tuple, object] = {}
  for path, variable in nnx.to_flat_state(dedicated):
    target, slot = switch_path(path, kinds)
    if slot is None:
      values[target] = variable.get_value()
    else:
      values.setdefault(target, {})[slot] = variable.get_value()
  placed = []
  for path, variable in nnx.to_flat_state(abstract):
    spec, value = variable.get_value(), values.get(tuple(path))
    if not isinstance(value, (dict, type(None))):
      placed.append((path, variable.replace(value)))
      continue
    slots = value or {}
    zeros = jnp.zeros(spec.shape[1:], spec.dtype)
    placed.append((path, variable.replace(jnp.stack([slots.get(i, zeros) for i in range(spec.shape[0])]))))
  return nnx.from_flat_state(placed)


def _check_pair(switch: SwitchLanguageModel, model: LanguageModel) -> np.ndarray:
  if model.config != switch.config:
    raise ValueError("the dedicated and switch models have different configs")
  return switch.kinds(model.layout)


def load_dedicated(switch: SwitchLanguageModel, model: LanguageModel) -> None:
  """Copies `model`'s parameters into `switch` in place (layer i of kind k -> slot i of stacks[k]); the slots
  the layout does not use keep their values."""
  kinds = _check_pair(switch, model)
  flat = dict(nnx.to_flat_state(nnx.state(switch)))
  for path, variable in nnx.to_flat_state(nnx.state(model)):
    target, slot = switch_path(path, kinds)
    value = variable.get_value()
    flat[target].set_value(value if slot is None else flat[target].get_value().at[slot].set(value))
  nnx.update(switch, nnx.from_flat_state(flat))


def from_dedicated(model: LanguageModel, space: str | None = None, *, remat: bool = True) -> SwitchLanguageModel:
  """A switch model over `space` (default: the layout's symbols in alphabet order) holding `model`'s
  parameters in the slots its layout uses."""
  space = space or "".join(s for s in primitives.alphabet() if s in model.layout.space())
  switch = SwitchLanguageModel(model.config, model.layout.depth, space, rngs=nnx.Rngs(0), remat=remat)
  load_dedicated(switch, model)
  return switch


def to_dedicated(switch: SwitchLanguageModel, layout: Layout | str) -> LanguageModel:
  """The dedicated `LanguageModel` of `layout` with the switch model's parameters for it (e.g. to keep or
  continue training a candidate found with the switch model)."""
  model = LanguageModel(layout, switch.config, rngs=nnx.Rngs(0))
  kinds = _check_pair(switch, model)
  flat = dict(nnx.to_flat_state(nnx.state(switch)))
  new = []
  for path, variable in nnx.to_flat_state(nnx.state(model)):
    source, slot = switch_path(path, kinds)
    value = flat[source].get_value()
    variable.set_value(value if slot is None else value[slot])
    new.append((path, variable))
  nnx.update(model, nnx.from_flat_state(new))
  return model
