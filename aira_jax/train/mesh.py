"""The device mesh of a training run and the shardings of its parameters, optimizer state and batches.

A run's devices form one mesh with axes ("data", "fsdp", "tensor"), all `AxisType.Auto` so XLA's sharding
propagation places the activations between the annotated inputs and outputs. The logical-axis rules table
lives in `aira_jax.sharding` (re-exported here): FSDP shards every matrix's "embed" axis over "fsdp", tensor
parallelism shards heads / FFN / SSM inner widths over "tensor", and a batch is split over ("data", "fsdp").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from aira_jax.sharding import LOGICAL_AXIS_RULES, MESH_AXES, shard_state, state_shardings

__all__ = ["LOGICAL_AXIS_RULES", "MESH_AXES", "MeshConfig", "batch_sharding", "make_mesh", "param_shardings",
           "place_train_state", "replicated", "shard_state", "state_shardings", "tree_shardings"]



@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Sizes of the mesh axes ("data", "fsdp", "tensor"). At most one may be -1: it takes the devices left over.

  The default puts every device on "fsdp" (pure FSDP: parameters, gradients and optimizer state sharded,
  batch split across all devices).
  """

  data: int = 1
  fsdp: int = -1
  tensor: int = 1

  def axis_sizes(self, num_devices: int) -> tuple[int, int, int]:
    """The resolved (data, fsdp, tensor) sizes for `num_devices`; ValueError naming the numbers otherwise."""
    sizes = (self.data, self.fsdp, self.tensor)
    named = ", ".join(f"{n}={s}" for n, s in zip(MESH_AXES, sizes))
    if any(s == 0 or s < -1 for s in sizes):
      raise ValueError(f"mesh axis sizes must be positive or -1, got {named}")
    free = [i for i, s in enumerate(sizes) if s == -1]
    if len(free) > 1:
      raise ValueError(f"at most one mesh axis may be -1, got {named}")
    fixed = math.prod(s for s in sizes if s != -1)
    if free:
      if num_devices % fixed:
        raise ValueError(f"mesh {named}: the fixed axes' product {fixed} does not divide the {num_devices} devices")
      sizes = tuple(num_devices // fixed if s == -1 else s for s in sizes)
    elif fixed != num_devices:
      raise ValueError(f"mesh {named} has {fixed} devices in all but there are {num_devices} devices")
    return sizes


def make_mesh(config: MeshConfig = MeshConfig(), devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh over `devices` (default: all of `jax.devices()`) with axes ("data", "fsdp", "tensor"), all Auto."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = config.axis_sizes(len(devices))
  return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """The same full copy on every device (scalars, step counters, metrics)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of (batch, ...) arrays: the leading axis over the mesh axes the "batch" rule names and the mesh
  has ("data", "fsdp"), the rest replicated; a mesh with neither axis gets the batch over all of its axes."""
  rule = LOGICAL_AXIS_RULES["batch"]
  wanted = (rule,) if isinstance(rule, str) else tuple(rule or ())
  axes = tuple(a for a in wanted if a in mesh.axis_names) or tuple(mesh.axis_names)
  return NamedSharding(mesh, PartitionSpec(axes if len(axes) > 1 else axes[0]))


def param_shardings(params: nnx.State, mesh: Mesh, rules: Mapping = LOGICAL_AXIS_RULES):
  """NamedShardings for every parameter of an NNX state, from its logical axis annotations."""
  return state_shardings(params, mesh, rules)


def tree_shardings(tree, mesh: Mesh, rules: Mapping = LOGICAL_AXIS_RULES):
  """Shardings for any pytree that mixes NNX variables and plain arrays, such as an optax state.

  optax builds its moments with `jax.tree.map` over the parameters, so each moment is an `nnx.Param` carrying
  the parameter's logical axis names and is sharded like it. Plain arrays (step counts, scalars) are
  replicated. Variables holding no array (optax.MaskedNode in multi_transform states) are kept as they are.
  """
  def leaf_sharding(leaf):
    if isinstance(leaf, nnx.Variable):
      # optax.multi_transform leaves a Variable around an empty MaskedNode for parameters of other groups.
      return param_shardings(leaf, mesh, rules) if jax.tree.leaves(leaf) else leaf
    return replicated(mesh)

  return jax.tree.map(leaf_sharding, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def place_train_state(params: nnx.State, opt_state, mesh: Mesh, rules: Mapping = LOGICAL_AXIS_RULES):
  """(params, opt_state) placed on `mesh` with the shardings the train step gives its outputs, so the step's
  first call compiles the same program as every later one (unplaced inputs would compile it a second time)."""
  return (jax.device_put(params, param_shardings(params, mesh, rules)),
          jax.device_put(opt_state, tree_shardings(opt_state, mesh, rules)))
