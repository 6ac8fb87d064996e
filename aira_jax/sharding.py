"""Logical axis names -> mesh axes, and placing a model's parameters on a mesh.

Modules annotate each parameter with logical axis names (see `aira_jax.layers.params`). `LOGICAL_AXIS_RULES`
maps them onto the mesh axes ("data", "fsdp", "tensor"): FSDP shards the d_model ("embed") axis of every
matrix over "fsdp"; tensor parallelism shards heads, FFN and SSM inner widths over "tensor"; activations'
batch goes over ("data", "fsdp"). A mesh axis of size 1 shards nothing, so one table serves every mesh.
The trainer (train/mesh.py) builds meshes; this module only needs one.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

LOGICAL_AXIS_RULES: Mapping[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
    "ssm_inner": "tensor",
    "ssm_heads": "tensor",
    "ssm_state": None,
}


def logical_to_mesh_spec(logical: PartitionSpec | tuple, rules: Mapping = LOGICAL_AXIS_RULES) -> PartitionSpec:
  """Maps a spec of logical names to mesh axes; a name absent from `rules` is replicated. A mesh axis is used
  at most once per spec (a later dimension asking for it again is replicated)."""
  used: set[str] = set()
  out = []
  for name in logical:
    target = rules.get(name) if name is not None else None
    axes = (target,) if isinstance(target, str) else tuple(target or ())
    axes = tuple(a for a in axes if a not in used)
    used.update(axes)
    out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return PartitionSpec(*out)


def _fits(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
  """Drops mesh axes from dimensions they do not divide (small test models on big meshes)."""
  out = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = (axes,) if isinstance(axes, str) else tuple(axes or ())
    size = 1
    for name in names:
      size *= mesh.shape[name]
    out.append(axes if dim % size == 0 else None)
  return PartitionSpec(*out)


def state_shardings(state: nnx.State, mesh: Mesh, rules: Mapping = LOGICAL_AXIS_RULES):
  """NamedShardings for every leaf of an NNX state, from its parameters' logical axis annotations."""
  logical_specs = nnx.get_partition_spec(state)
  return jax.tree.map(
      lambda spec, leaf: NamedSharding(mesh, _fits(logical_to_mesh_spec(spec or (), rules), leaf.shape, mesh)),
      logical_specs, state)


def shard_state(state: nnx.State, mesh: Mesh, rules: Mapping = LOGICAL_AXIS_RULES) -> nnx.State:
  """Places every array of `state` on `mesh` according to the rules."""
  return jax.device_put(state, state_shardings(state, mesh, rules))
