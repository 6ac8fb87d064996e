"""Tests for SwitchLanguageModel: equal to the dedicated model (logits and gradients, slot by slot), one compile
for many layouts, layout_kinds' errors, remat on/off, and a sharded (2, 2, 2) mesh."""

import jax
import numpy as np
import pytest
from flax import nnx

from aira_jax.compose.switch_model import (SwitchLanguageModel, from_dedicated, layout_kinds, switch_loss,
                                           switch_path, to_dedicated)
from aira_jax.models import LanguageModel, preset_config
from aira_jax.sharding import shard_state, state_shardings
from aira_jax.train.mesh import MeshConfig, make_mesh
from aira_jax.train.step import lm_loss


def batch(seed=0, size=2, seq=16, vocab=64):
  tokens = jax.random.randint(jax.random.key(seed), (size, seq + 1), 0, vocab)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}


def dedicated_loss(params, graphdef, data):
  logits = nnx.merge(graphdef, params)(data["inputs"])
  return lm_loss(logits, data["targets"])[0], logits


def switch_logits_loss(params, graphdef, kinds, data):
  logits = nnx.merge(graphdef, params)(data["inputs"], kinds)
  return lm_loss(logits, data["targets"])[0], logits


def flat(state):
  return {path: np.asarray(v.get_value()) for path, v in nnx.to_flat_state(state)}


@pytest.mark.parametrize("layout, space, changes", [
    ("AMMA", "AM", {}),
    ("MMMMA", "AM", dict(tie_embeddings=False, logit_softcap=5.0)),
    ("SAMSM", "SMA", dict(qk_norm=True)),
])
def test_matches_dedicated_logits_and_gradients_slot_by_slot(layout, space, changes):
  model = LanguageModel(layout, preset_config("tiny", **changes), rngs=nnx.Rngs(1))
  switch = from_dedicated(model, space)
  kinds, data = switch.kinds(layout), batch()
  graphdef, params = nnx.split(model)
  (loss, logits), grads = jax.jit(jax.value_and_grad(dedicated_loss, has_aux=True))(params, graphdef, data)
  switch_graphdef, switch_params = nnx.split(switch)
  (switch_value, switch_logits), switch_grads = jax.jit(jax.value_and_grad(switch_logits_loss, has_aux=True))(
      switch_params, switch_graphdef, kinds, data)
  np.testing.assert_allclose(np.asarray(switch_logits), np.asarray(logits), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(switch_value), float(loss), rtol=1e-6)

  switch_grads, used = flat(switch_grads), set()
  for path, grad in flat(grads).items():
    target, slot = switch_path(path, kinds)
    mapped = switch_grads[target] if slot is None else switch_grads[target][slot]
    np.testing.assert_allclose(mapped, grad, rtol=1e-5, atol=1e-7, err_msg=str(path))
    used.add((target, slot))
  for path, grad in switch_grads.items():
    if path[0] == "stacks":
      for slot in range(len(layout)):
        if (path, slot) not in used:
          assert not np.any(grad[slot]), f"unused slot {slot} of {path} has a gradient"
  # Back to the dedicated form: the same parameters.
  back, original = flat(nnx.state(to_dedicated(switch, layout))), flat(params)
  assert back.keys() == original.keys()
  for path, value in original.items():
    np.testing.assert_array_equal(back[path], value, err_msg=str(path))


def test_one_compile_serves_every_layout():
  switch = SwitchLanguageModel(preset_config("tiny"), 4, "AMS", rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(switch)
  traces = []

  def loss(params, kinds, data):
    traces.append(1)
    return switch_loss(params, graphdef, kinds, data)

  step = jax.jit(jax.value_and_grad(loss, has_aux=True))
  losses = {}
  for layout in ("AMAM", "MMMM", "SAMS", "AAAA", "SSSS"):
    (value, metrics), _ = step(params, switch.kinds(layout), batch())
    losses[layout] = float(value)
    assert np.isfinite(float(value)) and float(metrics["tokens"]) == 32
  assert len(traces) == 1 and step._cache_size() == 1
  assert len(set(losses.values())) == len(losses), losses  # the kinds do change the model


def test_layout_kinds_and_its_errors():
  np.testing.assert_array_equal(layout_kinds("AMMA", "AM"), [0, 1, 1, 0])
  assert layout_kinds("2S+A", "AMS", depth=3).dtype == np.int32
  np.testing.assert_array_equal(layout_kinds("2S+A", "SA"), [0, 0, 1])
  with pytest.raises(ValueError, match="has 4 layers; this switch model has 5"):
    layout_kinds("AMMA", "AM", depth=5)
  with pytest.raises(ValueError, match="outside the search space"):
    layout_kinds("AMSA", "AM")
  with pytest.raises(ValueError, match="distinct symbols"):
    layout_kinds("AM", "AMA")
  with pytest.raises(ValueError, match="unknown primitive"):
    SwitchLanguageModel(preset_config("tiny"), 2, "AX", rngs=nnx.Rngs(0))
  switch = SwitchLanguageModel(preset_config("tiny"), 2, "AM", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="kinds must have shape"):
    switch(batch()["inputs"], np.zeros(3, np.int32))


def test_remat_on_and_off_give_the_same_values():
  config, data, layout = preset_config("tiny"), batch(), "AMMA"
  results = []
  for remat in (True, False):
    switch = SwitchLanguageModel(config, 4, "AM", rngs=nnx.Rngs(3), remat=remat)
    graphdef, params = nnx.split(switch)
    results.append(jax.jit(jax.value_and_grad(switch_loss, has_aux=True))(params, graphdef,
                                                                           switch.kinds(layout), data))
  (with_remat, _), grads_remat = results[0]
  (without, _), grads_plain = results[1]
  np.testing.assert_allclose(float(with_remat), float(without), rtol=1e-6)
  for (path, a), b in zip(flat(grads_remat).items(), flat(grads_plain).values()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=str(path))


def test_sharded_mesh_replicates_the_layers_axis_and_matches():
  switch = SwitchLanguageModel(preset_config("tiny"), 4, "AMS", rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(switch)
  mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
  shardings = flat(jax.tree.map(lambda s: np.array(s.spec, dtype=object), state_shardings(params, mesh)))
  assert tuple(shardings[("stacks", 0, "wq")]) == (None, "fsdp", "tensor", None)
  assert tuple(shardings[("stacks", 1, "w_up")]) == (None, "fsdp", "tensor")
  kinds, data = switch.kinds("SAMA"), batch()
  loss = jax.jit(lambda p: switch_loss(p, graphdef, kinds, data)[0])
  np.testing.assert_allclose(float(loss(shard_state(params, mesh))), float(loss(params)), rtol=1e-5)
