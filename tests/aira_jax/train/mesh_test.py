"""Tests for MeshConfig resolution and errors, make_mesh and the batch / parameter / optimizer shardings."""

import jax
import optax
import pytest
from flax import nnx
from jax.sharding import AxisType, PartitionSpec

from aira_jax.models.language_model import LanguageModel
from aira_jax.models.presets import preset_config
from aira_jax.train.mesh import MeshConfig, batch_sharding, make_mesh, param_shardings, tree_shardings


def test_free_axis_takes_the_remaining_devices():
  assert MeshConfig().axis_sizes(8) == (1, 8, 1)
  assert MeshConfig(data=2, fsdp=-1, tensor=2).axis_sizes(8) == (2, 2, 2)
  assert MeshConfig(data=-1, fsdp=1, tensor=4).axis_sizes(8) == (2, 1, 4)


@pytest.mark.parametrize("config, message", [
    (MeshConfig(data=2, fsdp=2, tensor=1), "4 devices in all but there are 8"),
    (MeshConfig(data=3, fsdp=-1, tensor=1), "3 does not divide the 8 devices"),
    (MeshConfig(data=-1, fsdp=-1, tensor=1), "at most one mesh axis may be -1"),
    (MeshConfig(data=0, fsdp=-1, tensor=1), "positive or -1"),
])
def test_mesh_config_errors_name_the_numbers(config, message):
  with pytest.raises(ValueError, match=message):
    config.axis_sizes(8)


def test_make_mesh_has_auto_axes_and_shards_batch_over_data_and_fsdp():
  mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert all(t == AxisType.Auto for t in mesh.axis_types)
  assert batch_sharding(mesh).spec == PartitionSpec(("data", "fsdp"))
  single = make_mesh(MeshConfig(1, 1, 1), devices=jax.devices()[:1])
  assert single.devices.size == 1


def test_param_and_optimizer_state_shardings_follow_the_rules():
  mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
  _, params = nnx.split(LanguageModel("AM", preset_config("tiny"), rngs=nnx.Rngs(0)))
  shardings = param_shardings(params, mesh)
  assert shardings["embed"].spec == PartitionSpec("tensor", "fsdp")
  assert shardings["layers"][0]["wq"].spec == PartitionSpec("fsdp", "tensor", None)
  assert shardings["layers"][1]["w_down"].spec == PartitionSpec("tensor", "fsdp")
  opt_state = optax.adamw(1e-3).init(params)
  opt_shardings = tree_shardings(opt_state, mesh)
  assert jax.tree.structure(opt_shardings) == jax.tree.structure(opt_state)
  mu = opt_shardings[0].mu
  assert mu["layers"][0]["wq"].spec == shardings["layers"][0]["wq"].spec
  assert opt_shardings[0].count.spec == PartitionSpec()
