"""Tests for the Mamba-2 primitive: the scan against a sequential float64 recurrence, the whole layer against a
float64 numpy implementation, causality, and the initialisation ranges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.layers import kernels
from aira_jax.layers.mamba2 import Mamba2Layer, causal_depthwise_conv
from aira_jax.models import preset_config
from testing_utils import assert_causal, param_arrays, random_ssd_inputs


def sequential_ssd(x, dt, a, b, c, d):
  """h_t = exp(dt_t a) h_{t-1} + dt_t x_t b_t^T; y_t = h_t c_t + d x_t, one step at a time in float64."""
  x, dt, a, b, c, d = (np.asarray(t, np.float64) for t in (x, dt, a, b, c, d))
  batch, seq, heads, p = x.shape
  groups, n = b.shape[2:]
  y = np.zeros_like(x)
  for bi in range(batch):
    for head in range(heads):
      g = head // (heads // groups)
      h = np.zeros((p, n))
      for t in range(seq):
        h = np.exp(dt[bi, t, head] * a[head]) * h + dt[bi, t, head] * np.outer(x[bi, t, head], b[bi, t, g])
        y[bi, t, head] = h @ c[bi, t, g] + d[head] * x[bi, t, head]
  return y


@pytest.mark.parametrize("seq, chunk, groups", [(13, 4, 1), (16, 16, 2), (7, 64, 4)])
def test_scan_equals_sequential_float64_recurrence(seq, chunk, groups):
  inputs = random_ssd_inputs(seq, batch=2, seq=seq, heads=4, head_dim=3, groups=groups, d_state=5)
  x, dt, a, b, c, d = (jnp.asarray(inputs[k]) for k in ("x", "dt", "A", "B", "C", "D"))
  y = kernels.ssd_scan(x, dt, a, b, c, d, chunk_size=chunk, impl="xla")
  np.testing.assert_allclose(np.asarray(y), sequential_ssd(x, dt, a, b, c, d), rtol=1e-4, atol=1e-5)


def numpy_mamba2_layer(params, x, config):
  """Independent float64 implementation of x + Mamba2(RMSNorm(x)) (sequential scan)."""
  x = np.asarray(x, np.float64)
  batch, seq, _ = x.shape
  eps = config.norm_eps
  silu = lambda v: v / (1 + np.exp(-v))

  def rms(v, scale):
    return v / np.sqrt(np.mean(v ** 2, axis=-1, keepdims=True) + eps) * scale

  def conv(v, weight, bias):
    width = weight.shape[0]
    padded = np.concatenate([np.zeros((batch, width - 1, v.shape[2])), v], axis=1)
    return silu(bias + sum(padded[:, k:k + seq] * weight[k] for k in range(width)))

  h = rms(x, params["norm.scale"])
  z = h @ params["w_z"]
  xs = conv(h @ params["w_x"], params["conv_x.weight"], params["conv_x.bias"])
  b = conv(h @ params["w_b"], params["conv_b.weight"], params["conv_b.bias"])
  c = conv(h @ params["w_c"], params["conv_c.weight"], params["conv_c.bias"])
  dt = np.log1p(np.exp(h @ params["w_dt"] + params["dt_bias"]))
  a = -np.exp(params["a_log"])
  heads, groups, n = config.ssm_heads, config.ssm_groups, config.ssm_state_dim
  y = sequential_ssd(xs.reshape(batch, seq, heads, -1), dt, a, b.reshape(batch, seq, groups, n),
                     c.reshape(batch, seq, groups, n), params["d_skip"]).reshape(batch, seq, -1)
  y = rms(y * silu(z), params["out_norm.scale"])
  return x + y @ params["w_out"]


@pytest.mark.parametrize("groups", [1, 2])
def test_layer_matches_float64_reference(groups):
  config = preset_config("tiny", ssm_groups=groups, ssm_chunk_size=4)
  layer = Mamba2Layer(config, depth=4, rngs=nnx.Rngs(0))
  # Larger weights than the init so that every part of the layer matters to the output.
  for name in ("w_z", "w_x", "w_b", "w_c", "w_dt", "w_out"):
    getattr(layer, name)[...] = getattr(layer, name)[...] * 10
  x = jax.random.normal(jax.random.key(1), (2, 11, config.d_model))
  expected = numpy_mamba2_layer(param_arrays(layer), x, config)
  np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4)


def test_layer_is_causal():
  config = preset_config("tiny", ssm_chunk_size=4)
  layer = Mamba2Layer(config, depth=2, rngs=nnx.Rngs(0))
  layer.w_out[...] = layer.w_out[...] * 100  # make the mixer's contribution visible above the tolerance
  x = jax.random.normal(jax.random.key(1), (1, 10, config.d_model))
  for position in (0, 3, 4, 9):  # chunk boundaries included
    assert_causal(layer, x, position, atol=1e-5)


def test_causal_depthwise_conv_against_loops():
  x = np.random.default_rng(0).normal(size=(2, 6, 3))
  weight = np.random.default_rng(1).normal(size=(4, 3))
  bias = np.random.default_rng(2).normal(size=(3,))
  expected = np.zeros_like(x) + bias
  for t in range(6):
    for k in range(4):
      source = t - 3 + k
      if source >= 0:
        expected[:, t] += weight[k] * x[:, source]
  got = causal_depthwise_conv(jnp.asarray(x, jnp.float32), jnp.asarray(weight, jnp.float32),
                              jnp.asarray(bias, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_initialisation_ranges():
  config = preset_config("tiny", ssm_dt_min=0.01, ssm_dt_max=0.05)
  layer = Mamba2Layer(config, depth=2, rngs=nnx.Rngs(0))
  a = np.exp(np.asarray(layer.a_log[...]))
  dt = np.asarray(jax.nn.softplus(layer.dt_bias[...]))
  assert np.all((a >= 1) & (a <= 16))
  assert np.all((dt >= 0.01 - 1e-6) & (dt <= 0.05 + 1e-6))
  np.testing.assert_array_equal(np.asarray(layer.d_skip[...]), np.ones(config.ssm_heads))
