"""Tests for the learning-rate schedules, the weight-decay mask, Muon's labels and its orthogonal update."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.models.language_model import LanguageModel
from aira_jax.models.presets import preset_config
from aira_jax.train.optimizers import (OptimizerConfig, lr_schedule, make_optimizer, muon_dimension_numbers,
                                       muon_labels, weight_decay_mask)


def tiny_params(layout="AMSM"):
  return nnx.split(LanguageModel(layout, preset_config("tiny"), rngs=nnx.Rngs(0)))[1]


def schedule_at(config, steps, total_steps=None):
  schedule = lr_schedule(config, total_steps)
  return [schedule(s) for s in steps]


def test_warmup_cosine():
  """Warmup step s trains at (s + 1) / warmup; the cosine runs from the end of warmup to the last step."""
  config = OptimizerConfig(lr=1.0, schedule="warmup_cosine", warmup_steps=10, total_steps=111, min_lr_ratio=0.1)
  cosine = lambda t: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))  # noqa: E731
  np.testing.assert_allclose(schedule_at(config, [0, 4, 9, 10, 35, 60, 110, 200]),
                             [0.1, 0.5, 1.0, 1.0, cosine(0.25), cosine(0.5), 0.1, 0.1], rtol=1e-12)


def test_linear():
  config = OptimizerConfig(lr=2.0, schedule="linear", warmup_steps=0, total_steps=101, min_lr_ratio=0.0)
  np.testing.assert_allclose(schedule_at(config, [0, 25, 50, 100]), [2.0, 1.5, 1.0, 0.0], atol=1e-12)


def test_constant_then_decay():
  config = OptimizerConfig(lr=1.0, schedule="constant_then_decay", warmup_steps=10, total_steps=101,
                           decay_fraction=0.2, min_lr_ratio=0.0)
  # decay starts at 101 - round(20.2) = 81 and reaches 0 at the last step, 100
  np.testing.assert_allclose(schedule_at(config, [4, 10, 50, 81, 90, 100]), [0.5, 1, 1, 1, 1 - 9 / 19, 0], atol=1e-12)


def test_constant():
  config = OptimizerConfig(lr=0.3, schedule="constant", warmup_steps=4, total_steps=100)
  np.testing.assert_allclose(schedule_at(config, [0, 3, 99]), [0.075, 0.3, 0.3], rtol=1e-12)


@pytest.mark.parametrize("total", [3, 10, 60, 101, 1000])
def test_warmup_fraction_stretches_over_each_run(total):
  """compose's schedule: 10% warmup (at least one step), cosine to 10% of the peak at the last step, over
  whatever length the run has (the length is an argument, not part of the compiled step)."""
  config = OptimizerConfig(lr=3e-3, warmup_fraction=0.1, min_lr_ratio=0.1, total_steps=7)
  rates = schedule_at(config, range(total), total_steps=total)
  warmup = max(int(0.1 * total), 1)
  np.testing.assert_allclose(rates[:warmup], [3e-3 * (s + 1) / warmup for s in range(warmup)], rtol=1e-12)
  assert rates[-1] == pytest.approx(3e-4, rel=1e-12)
  assert np.all(np.diff(rates[warmup - 1:]) <= 1e-18), "not monotone after warmup"
  assert max(rates) == pytest.approx(3e-3) and schedule_at(config, [5 * total], total)[0] == pytest.approx(3e-4)


def test_config_errors():
  with pytest.raises(ValueError, match="schedule"):
    OptimizerConfig(schedule="cosine")
  with pytest.raises(ValueError, match="warmup_steps"):
    OptimizerConfig(warmup_steps=20, total_steps=10)
  with pytest.raises(ValueError, match="warmup_fraction"):
    OptimizerConfig(warmup_fraction=1.0)


def leaf(tree):
  """The one value under an NNX variable (labels and masks come back wrapped like the parameters)."""
  (value,) = jax.tree.leaves(tree)
  return value


def test_weight_decay_mask():
  params = tiny_params()
  mask = weight_decay_mask(params)
  assert leaf(mask["embed"]) and leaf(mask["layers"][0]["wq"]) and leaf(mask["layers"][1]["w_up"])
  assert not leaf(mask["final_norm"]["scale"]) and not leaf(mask["layers"][0]["norm"]["scale"])
  assert not leaf(mask["layers"][2]["conv_x"]["bias"]) and not leaf(mask["layers"][2]["a_log"])
  assert not leaf(weight_decay_mask(params, decay_embeddings=False)["embed"])


def test_adamw_does_not_decay_norms():
  params = tiny_params("M")
  optimizer = make_optimizer(OptimizerConfig(lr=0.1, weight_decay=0.5, schedule="constant", clip_norm=None),
                             params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = optimizer.update(zeros, optimizer.init(params), params)
  assert float(jnp.abs(updates["final_norm"]["scale"][...]).max()) == 0.0
  np.testing.assert_allclose(updates["layers"][0]["w_up"][...], -0.1 * 0.5 * params["layers"][0]["w_up"][...],
                             rtol=1e-6)


def test_muon_labels():
  labels = jax.tree.map(leaf, muon_labels(tiny_params()), is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert labels["embed"] == "adamw" and labels["final_norm"]["scale"] == "adamw"
  assert labels["layers"][0]["wq"] == "muon" and labels["layers"][0]["wo"] == "muon"
  assert labels["layers"][1]["w_down"] == "muon" and labels["layers"][2]["w_x"] == "muon"
  assert labels["layers"][2]["conv_x"]["weight"] == "adamw" and labels["layers"][2]["d_skip"] == "adamw"


def _singular_values(matrix):
  return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)


def test_muon_update_is_near_orthogonal_and_adamw_handles_the_rest():
  params = tiny_params()
  config = OptimizerConfig(name="muon", lr=1e-3, muon_lr=1.0, weight_decay=0.0, schedule="constant",
                           clip_norm=None)
  optimizer = make_optimizer(config, params)
  grads = jax.tree.map(lambda x: jax.random.normal(jax.random.key(1), x.shape, x.dtype), params)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # Five Newton-Schulz steps with optax's coefficients leave singular values near 1 (roughly 0.7 to 1.2);
  # a Gaussian matrix's smallest singular values (near 0 for the square one) are only partly lifted.
  for update in (updates["layers"][1]["w_up"][...],  # (32, 64)
                 updates["layers"][0]["wo"][...]):   # (heads, head_dim, d_model) as (heads * head_dim, d_model)
    sv = _singular_values(update.reshape(-1, update.shape[-1]))
    assert sv.max() < 1.5 and np.mean((sv > 0.6) & (sv < 1.25)) >= 0.9, sv
  assert _singular_values(grads["layers"][1]["w_up"][...]).max() > 3.0
  # Adam's first step moves every entry by ~lr * sign(grad).
  scale = updates["final_norm"]["scale"][...]
  np.testing.assert_allclose(np.abs(scale), 1e-3, rtol=1e-3)


def test_stacked_weights_are_treated_as_the_weights_they_stack():
  """The switch model's (layers, ...) stacks: a stacked norm scale is a vector (no decay, AdamW), a stacked
  projection a matrix (decay, Muon) whose Muon dimensions skip the stack axis."""
  from aira_jax.compose.switch_model import SwitchLanguageModel
  state = nnx.split(SwitchLanguageModel(preset_config("tiny"), 4, "AM", rngs=nnx.Rngs(0)))[1]
  decay, labels = weight_decay_mask(state), muon_labels(state)
  attention = lambda tree: tree["stacks"][0]  # noqa: E731  (space "AM": kind 0 is attention)
  assert leaf(attention(decay)["norm"]["scale"]) is False and leaf(attention(labels)["norm"]["scale"]) == "adamw"
  assert leaf(attention(decay)["wq"]) is True and leaf(attention(labels)["wq"]) == "muon"
  dims = attention(muon_dimension_numbers(state))["wq"]
  dims = dims.get_value() if hasattr(dims, "get_value") else dims
  assert attention(state)["wq"][...].ndim == 4 and (dims.reduction_axis, dims.output_axis) == (1, (2, 3))
