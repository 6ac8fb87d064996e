"""Tests for `attention_reference` against an independent float64 numpy computation, plus grouped-KV and
input-validation checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_cases import attention_inputs, numpy_attention
from pallas_kernels.attention import attention_reference, flash_attention


def _inputs(seed, batch, q_len, kv_len, heads, kv_heads, dim, dtype=jnp.float32):
  return attention_inputs(seed, batch, q_len, kv_len, heads, kv_heads, dim, dtype)[:3]


@pytest.mark.parametrize("q_len,kv_len,heads,kv_heads,causal,window,softcap,scale", [
    (9, 9, 2, 2, True, None, None, None),
    (9, 9, 4, 2, False, None, None, None),
    (5, 13, 4, 1, True, None, None, 0.3),
    (13, 13, 2, 1, True, 4, None, None),
    (7, 11, 4, 2, False, 3, None, None),
    (11, 11, 2, 2, True, None, 2.0, None),
    (13, 6, 2, 1, True, None, None, None),  # q_len > kv_len: early rows see no key
])
def test_reference_matches_numpy(q_len, kv_len, heads, kv_heads, causal, window, softcap, scale):
  q, k, v = _inputs(q_len * 31 + kv_len, 2, q_len, kv_len, heads, kv_heads, 8)
  got = attention_reference(q, k, v, causal=causal, sliding_window=window, softcap=softcap, scale=scale)
  want = numpy_attention(q, k, v, causal=causal, window=window, softcap=softcap, scale=scale)
  assert got.shape == q.shape and got.dtype == q.dtype
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_fully_masked_rows_are_zero_with_finite_grads():
  q, k, v = _inputs(0, 1, 10, 4, 2, 1, 8)  # causal with q_len > kv_len: first 6 rows see nothing
  out = attention_reference(q, k, v, causal=True)
  np.testing.assert_array_equal(np.asarray(out[:, :6]), 0.0)
  assert np.abs(np.asarray(out[:, 6:])).sum() > 0
  grads = jax.grad(lambda *a: jnp.sum(attention_reference(*a, causal=True) ** 2), argnums=(0, 1, 2))(q, k, v)
  for g in grads:
    assert np.isfinite(np.asarray(g)).all()
  np.testing.assert_array_equal(np.asarray(grads[0][:, :6]), 0.0)


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_kv_equals_repeated_kv(kv_heads):
  q, k, v = _inputs(3, 2, 10, 10, 4, kv_heads, 8)
  groups = 4 // kv_heads
  got = attention_reference(q, k, v, sliding_window=5)
  want = attention_reference(q, jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2), sliding_window=5)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_hooks_see_positions_and_heads():
  q, k, v = _inputs(4, 1, 6, 9, 2, 1, 8)
  # A score_mod that adds a huge bonus to key (q_idx - 1) of head 1 makes head 1 copy v at that key.
  bonus = lambda s, qi, ki, h: s + jnp.where((ki == qi - 1) & (h == 1), 1e4, 0.0)
  out = attention_reference(q, k, v, causal=True, score_mod=bonus)
  np.testing.assert_allclose(np.asarray(out[0, :, 1]), np.asarray(v[0, 2:8, 0]), atol=1e-5)
  # A mask_mod keeping only the diagonal makes every head copy v at q_idx.
  out = attention_reference(q, k, v, causal=False, mask_mod=lambda qi, ki, h: ki == qi)
  np.testing.assert_allclose(np.asarray(out[0]), np.repeat(np.asarray(v[0, 3:9]), 2, axis=1), atol=1e-6)


def test_bf16_inputs_give_bf16_output():
  q, k, v = _inputs(5, 1, 8, 8, 2, 2, 8, jnp.bfloat16)
  out = attention_reference(q, k, v)
  assert out.dtype == jnp.bfloat16
  want = numpy_attention(np.asarray(q, np.float32), np.asarray(k, np.float32), np.asarray(v, np.float32),
                         causal=True)
  np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("shapes,match", [
    (((1, 4, 2, 8), (1, 4, 2), (1, 4, 2, 8)), "rank 4"),
    (((1, 4, 3, 8), (1, 4, 2, 8), (1, 4, 2, 8)), "multiple of kv heads"),
    (((1, 4, 2, 8), (1, 4, 2, 16), (1, 4, 2, 16)), "head_dim"),
    (((1, 4, 2, 8), (1, 4, 2, 8), (1, 5, 2, 8)), "same shape"),
    (((2, 4, 2, 8), (1, 4, 2, 8), (1, 4, 2, 8)), "batch"),
])
@pytest.mark.parametrize("fn", [attention_reference, flash_attention])
def test_bad_shapes_raise(fn, shapes, match):
  q, k, v = (jnp.zeros(s, jnp.float32) for s in shapes)
  with pytest.raises(ValueError, match=match):
    fn(q, k, v)


def test_bad_options_raise():
  q = k = v = jnp.zeros((1, 4, 2, 8), jnp.float32)
  with pytest.raises(ValueError, match="unknown impl"):
    flash_attention(q, k, v, impl="cuda")
  with pytest.raises(ValueError, match="not offered"):
    flash_attention(q, k, v, impl="triton")
  with pytest.raises(ValueError, match="no lowering for backend 'cpu'"):
    flash_attention(q, k, v, impl="pallas")
  with pytest.raises(ValueError, match="sliding_window"):
    attention_reference(q, k, v, sliding_window=0)
  with pytest.raises(ValueError, match="softcap"):
    attention_reference(q, k, v, softcap=-1.0)
