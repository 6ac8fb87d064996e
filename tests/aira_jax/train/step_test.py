"""Tests for the LM loss, the pure train step (accumulation, remat, mixed precision) and the jitted, sharded
step on a (2, 2, 2) mesh of fake CPU devices."""

import functools
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.models.language_model import LanguageModel
from aira_jax.models.presets import preset_config
from aira_jax.tasks.base import IGNORE
from aira_jax.train.mesh import MeshConfig, make_mesh, place_train_state
from aira_jax.train.optimizers import OptimizerConfig, make_optimizer
from aira_jax.train.step import jit_train_step, lm_loss, loss_and_grads, split_params, train_step

LAYOUT = "AMSM"


def tiny_model(**overrides):
  return LanguageModel(LAYOUT, preset_config("tiny", **overrides), rngs=nnx.Rngs(0))


def fixed_batch(batch=8, length=16, vocab=64, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, vocab, size=(batch, length + 1)).astype(np.int32)
  return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:])}


def test_lm_loss_ignores_masked_positions():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
  targets = rng.integers(0, 7, size=(2, 5)).astype(np.int32)
  masked = targets.copy()
  masked[:, 3:] = IGNORE
  _, metrics = lm_loss(jnp.asarray(logits), jnp.asarray(masked))
  _, expected = lm_loss(jnp.asarray(logits[:, :3]), jnp.asarray(targets[:, :3]))
  np.testing.assert_allclose(metrics["ce"], expected["ce"], rtol=1e-6)
  assert float(metrics["tokens"]) == 6.0


def test_z_loss_matches_numpy():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 4, 11)).astype(np.float32) * 3
  targets = rng.integers(0, 11, size=(3, 4)).astype(np.int32)
  targets[0, 0] = IGNORE
  loss, metrics = lm_loss(jnp.asarray(logits), jnp.asarray(targets), z_loss=1e-2)
  counted = targets != IGNORE
  log_z = np.log(np.exp(logits.astype(np.float64)).sum(-1))
  target_logit = np.take_along_axis(logits, np.where(counted, targets, 0)[..., None], -1)[..., 0]
  ce = (log_z - target_logit)[counted].mean()
  z = 1e-2 * (log_z ** 2)[counted].mean()
  accuracy = (logits.argmax(-1) == targets)[counted].mean()
  np.testing.assert_allclose(metrics["ce"], ce, rtol=1e-5)
  np.testing.assert_allclose(metrics["z_loss"], z, rtol=1e-5)
  np.testing.assert_allclose(loss, ce + z, rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"], accuracy, rtol=1e-6)


def test_no_counted_tokens_gives_zero_not_nan():
  loss, _ = lm_loss(jnp.zeros((1, 2, 3)), jnp.full((1, 2), IGNORE, jnp.int32))
  assert float(loss) == 0.0


@pytest.mark.parametrize("uneven", [False, True])
@pytest.mark.parametrize("accum_steps, branches", [(4, 1), (1, 2), (2, 2)])
def test_grad_accumulation_equals_big_batch(uneven, accum_steps, branches):
  graphdef, params = nnx.split(tiny_model())
  batch = fixed_batch()
  if uneven:  # micro-batches count different numbers of tokens: token weighting still matches exactly
    batch["targets"] = batch["targets"].at[0, :11].set(IGNORE).at[5, 3:].set(IGNORE)
  big_metrics, big_grads = jax.jit(lambda p, b: loss_and_grads(p, b, graphdef=graphdef, z_loss=1e-3)[:2])(
      params, batch)
  acc_metrics, acc_grads = jax.jit(lambda p, b: loss_and_grads(
      p, b, graphdef=graphdef, grad_accum_steps=accum_steps, parallel_branches=branches, z_loss=1e-3)[:2])(
          params, batch)
  np.testing.assert_allclose(acc_metrics["loss"], big_metrics["loss"], rtol=1e-5)
  assert float(acc_metrics["tokens"]) == float(big_metrics["tokens"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), acc_grads, big_grads)


@pytest.mark.parametrize("accum_steps, branches, message", [
    (1, 0, "must be >= 1"), (0, 1, "must be >= 1"), (1, 3, "cannot be split into 3 equal parts")])
def test_bad_split_of_the_batch_is_a_clear_error(accum_steps, branches, message):
  graphdef, params = nnx.split(tiny_model())
  with pytest.raises(ValueError, match=message):
    loss_and_grads(params, fixed_batch(), graphdef=graphdef, grad_accum_steps=accum_steps,
                   parallel_branches=branches)


def test_remat_gives_identical_loss_and_grads():
  batch = fixed_batch()
  graphdef, params = nnx.split(tiny_model())
  remat_graphdef, remat_params = nnx.split(tiny_model(remat=True))
  metrics, grads = jax.jit(lambda p, b: loss_and_grads(p, b, graphdef=graphdef)[:2])(params, batch)
  remat_metrics, remat_grads = jax.jit(lambda p, b: loss_and_grads(p, b, graphdef=remat_graphdef)[:2])(
      remat_params, batch)
  np.testing.assert_allclose(remat_metrics["loss"], metrics["loss"], rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), remat_grads, grads)


def test_bf16_compute_keeps_float32_params():
  graphdef, params = nnx.split(tiny_model(dtype="bfloat16"))
  optimizer = make_optimizer(OptimizerConfig(schedule="constant", lr=1e-3), params)
  new_params, _, metrics = jax.jit(lambda p, s, b: train_step(p, s, b, graphdef=graphdef, optimizer=optimizer,
                                                              compute_dtype="bfloat16"))(
      params, optimizer.init(params), fixed_batch())
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(new_params))
  assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0


def test_tiny_lm_overfits_a_fixed_batch():
  graphdef, params = nnx.split(tiny_model())
  optimizer = make_optimizer(OptimizerConfig(lr=1e-2, schedule="constant", weight_decay=0.0), params)
  mesh = make_mesh(MeshConfig(1, 1, 1), devices=jax.devices()[:1])
  batch = fixed_batch(batch=4)
  opt_state = optimizer.init(params)
  step = jit_train_step(graphdef, optimizer, mesh, params, opt_state)
  losses = []
  for _ in range(150):
    params, opt_state, metrics = step(params, opt_state, batch, {}, 1.0)
    losses.append(float(metrics["loss"]))
  assert losses[0] > 3.5 and losses[-1] < 0.2, (losses[0], losses[-1])


def _run_steps(mesh, steps=3):
  graphdef, params = nnx.split(tiny_model())
  optimizer = make_optimizer(OptimizerConfig(name="muon", lr=3e-3, warmup_steps=1, total_steps=10), params)
  params, opt_state = place_train_state(params, optimizer.init(params), mesh)
  batch = fixed_batch()
  step = jit_train_step(graphdef, optimizer, mesh, params, opt_state, grad_accum_steps=2, z_loss=1e-4)
  specs_before = jax.tree.map(lambda x: x.sharding.spec, params)
  losses = []
  for number in range(steps):
    params, opt_state, metrics = step(params, opt_state, batch, {}, np.float32(0.5 + 0.25 * number))
    losses.append(float(metrics["loss"]))
  assert step._cache_size() == 1  # placed inputs: the step compiled once, not again for its own outputs
  return losses, params, specs_before


def test_sharded_steps_match_single_device_and_keep_shardings():
  mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
  sharded_losses, sharded_params, specs_before = _run_steps(mesh)
  single_losses, single_params, _ = _run_steps(make_mesh(MeshConfig(1, 1, 1), devices=jax.devices()[:1]))
  np.testing.assert_allclose(sharded_losses, single_losses, rtol=2e-5)
  assert sharded_losses[-1] < sharded_losses[0]
  assert jax.tree.map(lambda x: x.sharding.spec, sharded_params) == specs_before
  assert any(spec != jax.sharding.PartitionSpec() for spec in jax.tree.leaves(specs_before))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), sharded_params, single_params)


def test_the_step_lowers_on_abstract_inputs_with_shardings():
  graphdef, params = nnx.split(tiny_model())
  optimizer = make_optimizer(OptimizerConfig(), params)
  opt_state = jax.eval_shape(optimizer.init, params)
  abstract_params = jax.eval_shape(lambda: params)
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), fixed_batch())
  mesh = make_mesh(MeshConfig(data=2, fsdp=4, tensor=1))
  step = jit_train_step(graphdef, optimizer, mesh, abstract_params, opt_state)
  lowered = step.lower(abstract_params, opt_state, batch, {}, jax.ShapeDtypeStruct((), jnp.float32))
  assert "sharding" in lowered.as_text()


def test_lr_scale_is_the_schedule_and_an_input_of_one_compiled_step():
  """The update at lr_scale s is s times the update at 1 (AdamW's decoupled decay included), and changing s
  does not compile the step again."""
  graphdef, params = nnx.split(tiny_model())
  optimizer = make_optimizer(OptimizerConfig(lr=1e-2, weight_decay=0.1), params)
  mesh = make_mesh(MeshConfig(1, 1, 1), devices=jax.devices()[:1])
  step = jit_train_step(graphdef, optimizer, mesh, params, optimizer.init(params))
  batch = fixed_batch()

  def update(scale):
    start, opt_state = place_train_state(params, optimizer.init(params), mesh)
    start = jax.tree.map(jnp.copy, start)
    before = jax.tree.map(np.asarray, start)
    new, _, _ = step(start, opt_state, batch, {}, np.float32(scale))
    return jax.tree.map(lambda a, b: np.asarray(a) - b, new, before)

  full, third = update(1.0), update(1 / 3)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a / 3, rtol=1e-3, atol=2e-7), full, third)
  assert step._cache_size() == 1


class _CountingClassifier(nnx.Module):
  """A classifier with state besides its parameters: a call counter and dropout's RNG."""

  def __init__(self, rngs):
    self.embed = nnx.Param(jax.random.normal(rngs.params(), (64, 8)))
    self.head = nnx.Param(jax.random.normal(rngs.params(), (8, 3)) * 0.3)
    self.calls = nnx.Variable(jnp.zeros((), jnp.int32))
    self.dropout = nnx.Dropout(0.5, rngs=rngs)

  def __call__(self, tokens, extra):
    self.calls[...] = self.calls[...] + 1
    pooled = jnp.mean(self.embed[...][tokens] + self.embed[...][extra], axis=1)
    return self.dropout(pooled) @ self.head[...]


@pytest.mark.parametrize("accum_steps", [1, 2])
def test_a_classifier_with_state_trains_through_the_same_step(accum_steps):
  """A custom forward (two inputs, (B, classes) logits against (B,) labels), non-parameter state threaded
  through the micro-batches (the counter advances once per micro-batch; the optimizer sees only Params), and
  the loss matches a plain jnp cross-entropy."""
  model = _CountingClassifier(nnx.Rngs(0, dropout=1))
  model.eval()  # deterministic, so the loss can be checked by hand
  graphdef, state = nnx.split(model)
  params = split_params(state)[0]
  optimizer = make_optimizer(OptimizerConfig(lr=1e-2, weight_decay=0.0), params)
  rng = np.random.default_rng(0)
  batch = {"inputs": rng.integers(0, 64, (4, 5)).astype(np.int32),
           "extra": rng.integers(0, 64, (4, 5)).astype(np.int32), "targets": np.array([0, 1, 2, 1], np.int32)}
  forward = lambda m, b, _: m(b["inputs"], b["extra"])  # noqa: E731
  step = jax.jit(functools.partial(train_step, graphdef=graphdef, optimizer=optimizer, forward=forward,
                                   grad_accum_steps=accum_steps))
  new_state, _, metrics = step(state, optimizer.init(params), batch, {}, np.float32(1.0))
  logits = (np.asarray(state["embed"][...])[batch["inputs"]] + np.asarray(state["embed"][...])[batch["extra"]]
            ).mean(1) @ np.asarray(state["head"][...])
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(metrics["loss"], -log_p[np.arange(4), batch["targets"]].mean(), rtol=1e-5)
  assert int(new_state["calls"][...]) == accum_steps
  assert not np.allclose(new_state["head"][...], state["head"][...])
