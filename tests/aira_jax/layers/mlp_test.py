"""Tests for the MLP primitive and the norms against float64 numpy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.layers.mlp import MLPLayer
from aira_jax.layers.norm import GatedRMSNorm, RMSNorm
from aira_jax.models import preset_config
from testing_utils import param_arrays


def rms(v, scale, eps):
  return v / np.sqrt(np.mean(v ** 2, axis=-1, keepdims=True) + eps) * scale


@pytest.mark.parametrize("activation", ["swiglu", "relu2"])
def test_mlp_matches_float64_reference(activation):
  config = preset_config("tiny", mlp_activation=activation)
  layer = MLPLayer(config, depth=2, rngs=nnx.Rngs(0))
  params = param_arrays(layer)
  x = jax.random.normal(jax.random.key(1), (2, 5, config.d_model))
  xn = np.asarray(x, np.float64)
  h = rms(xn, params["norm.scale"], config.norm_eps)
  up = h @ params["w_up"]
  if activation == "swiglu":
    gate = h @ params["w_gate"]
    hidden = gate / (1 + np.exp(-gate)) * up
  else:
    hidden = np.maximum(up, 0) ** 2
  expected = xn + hidden @ params["w_down"]
  np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)
  assert ("w_gate" in params) == (activation == "swiglu")


def test_mlp_is_position_wise():
  config = preset_config("tiny")
  layer = MLPLayer(config, depth=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (1, 6, config.d_model))
  np.testing.assert_allclose(np.asarray(layer(x)[:, 2:3]), np.asarray(layer(x[:, 2:3])), rtol=1e-6, atol=1e-6)


def test_rms_norms_match_formulas_and_keep_dtype():
  x = jax.random.normal(jax.random.key(0), (3, 4, 8))
  z = jax.random.normal(jax.random.key(1), (3, 4, 8))
  norm, gated = RMSNorm(8, eps=1e-6), GatedRMSNorm(8, eps=1e-6)
  norm.scale[...] = jnp.arange(1.0, 9.0)
  gated.scale[...] = jnp.arange(2.0, 10.0)
  xn, zn = np.asarray(x, np.float64), np.asarray(z, np.float64)
  np.testing.assert_allclose(np.asarray(norm(x)), rms(xn, np.arange(1.0, 9.0), 1e-6), rtol=1e-5)
  silu = zn / (1 + np.exp(-zn))
  np.testing.assert_allclose(np.asarray(gated(x, z)), rms(xn * silu, np.arange(2.0, 10.0), 1e-6), rtol=1e-5)
  assert norm(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
