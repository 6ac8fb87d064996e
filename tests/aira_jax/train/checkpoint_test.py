"""Tests for Checkpointer: an interrupted-and-resumed run matches an uninterrupted one bit for bit, keep-N,
async save then wait, latest-step restore, sharded restore targets, and the empty-directory error."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from aira_jax.models import LanguageModel, preset_config
from aira_jax.train.checkpoint import Checkpointer, abstract_like
from aira_jax.train.data import ArraySource, make_loader

SEQ, ROWS, BATCH = 8, 12, 4


def make_loader_for_test():
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 64, (ROWS, SEQ + 1), dtype=np.int32)
  source = ArraySource({"inputs": tokens[:, :-1], "targets": tokens[:, 1:]})
  return make_loader(source, batch_size=BATCH, seed=1, process_index=0, process_count=1)


def fresh_training():
  """(graphdef, params, opt_state, optimizer, loader) exactly as a new run would build them."""
  model = LanguageModel("AM", preset_config("tiny"), rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  optimizer = optax.adamw(1e-2)
  return graphdef, params, optimizer.init(params), optimizer, make_loader_for_test()


def make_step(graphdef, optimizer):
  @jax.jit
  def step(params, opt_state, inputs, targets):
    def loss_fn(p):
      logits = nnx.merge(graphdef, p)(inputs)
      return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def train(step, params, opt_state, loader, num_steps):
  for _ in range(num_steps):
    batch = next(loader)
    params, opt_state = step(params, opt_state, jnp.asarray(batch["inputs"]), jnp.asarray(batch["targets"]))
  return params, opt_state


def test_interrupted_and_resumed_run_matches_uninterrupted_bit_for_bit(tmp_path):
  total, first = 6, 4  # 4 steps cross the 3-batch epoch boundary, so the data position matters
  graphdef, params, opt_state, optimizer, loader = fresh_training()
  step = make_step(graphdef, optimizer)
  straight_params, straight_opt = train(step, params, opt_state, loader, total)

  graphdef, params, opt_state, optimizer, loader = fresh_training()
  params, opt_state = train(step, params, opt_state, loader, first)
  with Checkpointer(tmp_path / "ckpt") as ckpt:
    assert ckpt.save(first, params, opt_state, loader.get_state())
    ckpt.wait()
  del params, opt_state, loader

  graphdef, init_params, init_opt, optimizer, loader = fresh_training()
  with Checkpointer(tmp_path / "ckpt") as ckpt:
    params, opt_state, data_state, restored_step = ckpt.restore(
        abstract_params=abstract_like(init_params), abstract_opt_state=abstract_like(init_opt))
  assert restored_step == first
  assert isinstance(params, nnx.State)
  loader.set_state(data_state)
  resumed_params, resumed_opt = train(make_step(graphdef, optimizer), params, opt_state, loader, total - first)

  assert jax.tree.structure(resumed_params) == jax.tree.structure(straight_params)
  for want, got in zip(jax.tree.leaves(straight_params), jax.tree.leaves(resumed_params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  for want, got in zip(jax.tree.leaves(straight_opt), jax.tree.leaves(resumed_opt)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def small_tree(value):
  return {"w": jnp.full((4, 2), value, jnp.float32), "b": jnp.arange(3, dtype=jnp.int32) + int(value)}


def small_opt(value):
  return (optax.ScaleByAdamState(count=jnp.int32(value), mu={"w": jnp.full((4, 2), value)}, nu={"w": jnp.ones((4, 2))}),
          optax.EmptyState())


def test_keeps_the_newest_steps_and_restores_latest(tmp_path):
  with Checkpointer(tmp_path, max_to_keep=2, async_save=True) as ckpt:
    for s in range(1, 5):
      assert ckpt.save(s, small_tree(s), small_opt(s), {"next": s})
    ckpt.wait()
    assert ckpt.all_steps() == [3, 4]
    assert ckpt.latest_step() == 4
    params, opt, data, step = ckpt.restore(abstract_params=small_tree(0), abstract_opt_state=small_opt(0))
    assert step == 4 and data == {"next": 4}
    np.testing.assert_array_equal(params["w"], np.full((4, 2), 4.0))
    np.testing.assert_array_equal(params["b"], [4, 5, 6])
    assert int(opt[0].count) == 4 and isinstance(opt[1], optax.EmptyState)
    params, _, data, step = ckpt.restore(3, abstract_params=small_tree(0), abstract_opt_state=small_opt(0))
    assert step == 3 and data == {"next": 3}
    with pytest.raises(ValueError, match="saved steps: \\[3, 4\\]"):
      ckpt.restore(1, abstract_params=small_tree(0), abstract_opt_state=small_opt(0))


def test_save_interval_skips_steps(tmp_path):
  with Checkpointer(tmp_path, save_interval_steps=2, async_save=False) as ckpt:
    saved = [ckpt.save(s, small_tree(s), small_opt(s)) for s in range(4)]
    assert saved == [True, False, True, False]
    assert ckpt.all_steps() == [0, 2]
    assert ckpt.restore(abstract_params=small_tree(0), abstract_opt_state=small_opt(0))[2] is None


def test_restore_lands_in_the_abstract_shardings(tmp_path):
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("data", "fsdp"))
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(0, small_tree(2), small_opt(2))
    sharding = NamedSharding(mesh, PartitionSpec("fsdp", None))
    target = {"w": jax.ShapeDtypeStruct((4, 2), jnp.float32, sharding=sharding),
              "b": jax.ShapeDtypeStruct((3,), jnp.int32, sharding=NamedSharding(mesh, PartitionSpec()))}
    params, _, _, _ = ckpt.restore(abstract_params=target, abstract_opt_state=small_opt(0))
  assert params["w"].sharding.is_equivalent_to(sharding, 2)
  np.testing.assert_array_equal(params["w"], np.full((4, 2), 2.0))


def test_restoring_from_an_empty_directory_names_it(tmp_path):
  directory = tmp_path / "nothing_here"
  with Checkpointer(directory) as ckpt:
    assert ckpt.latest_step() is None
    with pytest.raises(FileNotFoundError, match="nothing_here"):
      ckpt.restore(abstract_params=small_tree(0), abstract_opt_state=small_opt(0))
