"""Tests for the attention primitive: float64 numpy reference, grouped KV = repeated KV, causality, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.layers.attention import AttentionLayer
from aira_jax.models import preset_config
from testing_utils import assert_causal, param_arrays


def numpy_attention_layer(params, x, *, heads, kv_heads, theta, eps, causal=True, window=None, qk_norm=False):
  """Independent float64 implementation of x + Attention(RMSNorm(x))."""
  x = np.asarray(x, np.float64)
  batch, seq, _ = x.shape

  def rms(v, scale):
    return v / np.sqrt(np.mean(v ** 2, axis=-1, keepdims=True) + eps) * scale

  h = rms(x, params["norm.scale"])
  q = np.einsum("bsd,dnk->bsnk", h, params["wq"])
  k = np.einsum("bsd,dnk->bsnk", h, params["wk"])
  v = np.einsum("bsd,dnk->bsnk", h, params["wv"])
  if qk_norm:
    q, k = rms(q, params["q_norm.scale"]), rms(k, params["k_norm.scale"])
  hd = q.shape[-1]
  inv = theta ** (-np.arange(0, hd, 2) / hd)
  ang = np.arange(seq)[:, None] * inv[None, :]
  cos, sin = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]

  def rope(t):
    a, b = t[..., :hd // 2], t[..., hd // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

  q, k = rope(q), rope(k)
  out = np.zeros_like(q)
  for n in range(heads):
    kv = n // (heads // kv_heads)
    s = np.einsum("bqk,bsk->bqs", q[:, :, n], k[:, :, kv]) / np.sqrt(hd)
    i, j = np.arange(seq)[:, None], np.arange(seq)[None, :]
    keep = np.ones((seq, seq), bool)
    if causal:
      keep &= j <= i
    if window is not None:
      keep &= (i - j) < window
    s = np.where(keep[None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out[:, :, n] = np.einsum("bqs,bsk->bqk", p, v[:, :, kv])
  return x + np.einsum("bsnk,nkd->bsd", out, params["wo"])


@pytest.mark.parametrize("kv_heads, qk_norm, window, causal", [
    (4, False, None, True), (2, True, None, True), (1, False, 3, True), (2, False, None, False)])
def test_matches_float64_reference(kv_heads, qk_norm, window, causal):
  config = preset_config("tiny", num_kv_heads=kv_heads, qk_norm=qk_norm, sliding_window=window)
  layer = AttentionLayer(config, depth=4, rngs=nnx.Rngs(1), causal=causal)
  x = jax.random.normal(jax.random.key(2), (2, 11, config.d_model))
  expected = numpy_attention_layer(param_arrays(layer), x, heads=4, kv_heads=kv_heads, theta=config.rope_theta,
                                   eps=config.norm_eps, causal=causal, window=window, qk_norm=qk_norm)
  np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=2e-5, atol=2e-5)


def test_grouped_kv_equals_multi_head_with_repeated_kv():
  grouped_config = preset_config("tiny", num_heads=4, num_kv_heads=2)
  grouped = AttentionLayer(grouped_config, depth=2, rngs=nnx.Rngs(3))
  full = AttentionLayer(grouped_config.replace(num_kv_heads=4), depth=2, rngs=nnx.Rngs(4))
  full.wq[...] = grouped.wq[...]
  full.wo[...] = grouped.wo[...]
  full.wk[...] = jnp.repeat(grouped.wk[...], 2, axis=1)  # kv head j serves query heads 2j, 2j+1
  full.wv[...] = jnp.repeat(grouped.wv[...], 2, axis=1)
  x = jax.random.normal(jax.random.key(5), (2, 9, grouped_config.d_model))
  np.testing.assert_allclose(np.asarray(grouped(x)), np.asarray(full(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window", [None, 2])
def test_causal(window):
  config = preset_config("tiny", sliding_window=window)
  layer = AttentionLayer(config, depth=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (1, 10, config.d_model))
  for position in (0, 4, 9):
    assert_causal(layer, x, position)


def test_bidirectional_sees_the_future():
  config = preset_config("tiny")
  layer = AttentionLayer(config, depth=2, rngs=nnx.Rngs(0), causal=False)
  x = jax.random.normal(jax.random.key(1), (1, 6, config.d_model))
  changed = x.at[:, 5].add(1.0)
  assert np.max(np.abs(np.asarray(layer(changed)[:, 0] - layer(x)[:, 0]))) > 1e-4


def test_sliding_window_limits_the_receptive_field():
  config = preset_config("tiny", sliding_window=3)
  layer = AttentionLayer(config, depth=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (1, 10, config.d_model))
  changed = x.at[:, 2].add(1.0)
  diff = np.max(np.abs(np.asarray(layer(changed) - layer(x))), axis=(0, 2))
  assert np.all(diff[5:] < 1e-6) and np.all(diff[2:5] > 1e-4)  # positions 2, 3, 4 see position 2


def test_rope_scores_depend_only_on_relative_position():
  from aira_jax.layers.rope import apply_rope, rope_angles
  q = jax.random.normal(jax.random.key(0), (1, 1, 1, 16))
  k = jax.random.normal(jax.random.key(1), (1, 1, 1, 16))

  def score(pq, pk):
    cq, sq = rope_angles(jnp.array([[pq]]), 16, 10_000.0)
    ck, sk = rope_angles(jnp.array([[pk]]), 16, 10_000.0)
    return float(jnp.sum(apply_rope(q, cq, sq) * apply_rope(k, ck, sk)))

  assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-4)
  assert score(7, 3) != pytest.approx(score(7, 5), rel=1e-3)


def test_default_positions_use_constant_angles_equal_to_explicit_positions():
  from aira_jax.layers.rope import default_rope_angles, rope_angles
  cos, sin = default_rope_angles(300, 16, 10_000.0)
  want_cos, want_sin = rope_angles(jnp.arange(300)[None, :], 16, 10_000.0)
  np.testing.assert_allclose(cos, want_cos, atol=3e-5)  # float32 angles up to ~300 rad: ~1e-5 apart
  np.testing.assert_allclose(sin, want_sin, atol=3e-5)
  config = preset_config("tiny")
  layer = AttentionLayer(config, depth=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (2, 12, config.d_model))
  default = jax.jit(lambda x: layer(x))(x)
  explicit = layer(x, positions=jnp.broadcast_to(jnp.arange(12), (2, 12)))
  np.testing.assert_allclose(np.asarray(default), np.asarray(explicit), atol=1e-5)
  assert "sine" not in jax.jit(lambda x: layer(x)).lower(x).as_text()  # no sin / cos left in the program
