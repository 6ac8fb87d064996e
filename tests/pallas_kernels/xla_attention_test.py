"""Tests for `xla_attention`, the impl="xla" path of `flash_attention` (hand-written backward): values and
q/k/v gradients against `attention_reference` (differentiated by JAX) and the float64 numpy oracle, with ragged
lengths, grouped KV, masks, softcap, score/mask hooks and fully masked rows; bf16; and the compiled backward's
products all in the form XLA:CPU runs fast."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_cases import (HOOK_CASES, SHAPE_CASES, alibi, assert_matches_reference, attention_inputs,
                             attention_value_and_grads, numpy_attention)
from pallas_kernels.attention import attention_reference, flash_attention
from pallas_kernels.attention.xla_attention import xla_attention


XLA_SHAPE_CASES = {**SHAPE_CASES, "gqa3-softcap-window": (37, 37, 6, 2, dict(causal=True, softcap=3.0,
                                                                               sliding_window=11))}


@pytest.mark.parametrize("q_len,kv_len,heads,kv_heads,kw", XLA_SHAPE_CASES.values(), ids=XLA_SHAPE_CASES.keys())
def test_matches_reference(q_len, kv_len, heads, kv_heads, kw):
  q, k, v, ct = attention_inputs(q_len * 7 + kv_len + heads, 2, q_len, kv_len, heads, kv_heads, 8)
  assert_matches_reference(xla_attention, q, k, v, ct, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("kw", HOOK_CASES.values(), ids=HOOK_CASES.keys())
def test_hooks_match_reference(kw):
  q, k, v, ct = attention_inputs(8, 2, 30, 30, 4, 2, 8)
  assert_matches_reference(xla_attention, q, k, v, ct, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("causal,window,softcap", [(True, None, None), (False, 4, None), (True, None, 2.0)])
def test_matches_float64_numpy(causal, window, softcap):
  q, k, v, _ = attention_inputs(9, 2, 13, 17, 4, 2, 8)
  got = xla_attention(q, k, v, causal=causal, sliding_window=window, softcap=softcap)
  want = numpy_attention(q, k, v, causal=causal, window=window, softcap=softcap)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_fully_masked_rows_give_zeros_and_zero_grads():
  # q_len > kv_len with causal: the first 14 rows see no key; the mask_mod also blanks row 20 entirely.
  q, k, v, ct = attention_inputs(11, 1, 24, 10, 2, 1, 8)
  blank = lambda q_idx, kv_idx, head: q_idx != 6
  out = np.asarray(assert_matches_reference(xla_attention, q, k, v, ct, rtol=1e-5, atol=1e-5, causal=True,
                                            mask_mod=blank))
  np.testing.assert_array_equal(out[:, :14], 0.0)
  np.testing.assert_array_equal(out[:, 20], 0.0)
  assert np.abs(out[:, 14:20]).min() > 0
  dq = np.asarray(jax.grad(lambda q: jnp.sum(xla_attention(q, k, v, causal=True) * ct))(q))
  np.testing.assert_array_equal(dq[:, :14], 0.0)


def test_flash_attention_xla_impl_is_this_path_and_bf16_stays_bf16():
  q, k, v, ct = attention_inputs(12, 1, 37, 37, 4, 2, 16, jnp.bfloat16)
  got = attention_value_and_grads(lambda *a: flash_attention(*a, impl="xla", sliding_window=20), q, k, v, ct)
  direct = attention_value_and_grads(lambda *a: xla_attention(*a, sliding_window=20), q, k, v, ct)
  f32 = lambda x: x.astype(jnp.float32)
  want = attention_value_and_grads(lambda *a: attention_reference(*a, sliding_window=20), f32(q), f32(k), f32(v),
                                   ct)
  for name, g, d, w in zip(("out", "dq", "dk", "dv"), got, direct, want):
    assert g.dtype == jnp.bfloat16, name
    np.testing.assert_array_equal(np.asarray(g, np.float32), np.asarray(d, np.float32), err_msg=name)
    g, w = np.asarray(g, np.float32), np.asarray(w)
    np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-2 * np.abs(w).max(), err_msg=name)


def _row_contracting_dots(fn, *args):
  """Dots of fn's optimized CPU HLO whose lhs contracts a dimension other than its last (the slow form)."""
  text = jax.jit(fn).lower(*args).compile().as_text()
  shapes = dict(re.findall(r"%([\w.\-]+) = (\w+\[[\d,]*\])", text))
  shapes.update(re.findall(r"([\w.\-]+): (\w+\[[\d,]*\])", text))  # fused computations' parameters
  slow = []
  for lhs, dims in re.findall(r" dot\(%?([\w.\-]+), [^)]*\), .*?lhs_contracting_dims=\{(\d+)\}", text):
    rank = shapes[lhs].count(",") + 1
    if int(dims) != rank - 1:
      slow.append(lhs)
  return slow, text


def test_backward_products_contract_the_fast_way_on_cpu():
  """The gradient's six products keep lhs-contracts-its-last-dim form: the transposes the backward
  materialises are not folded back into row-contracting products (which XLA:CPU runs 2-3x slower)."""
  q, k, v, ct = attention_inputs(13, 2, 64, 64, 4, 2, 16)
  loss = lambda fn: (lambda q, k, v: jnp.sum(fn(q, k, v, causal=True) * ct))
  grads = lambda fn: jax.grad(loss(fn), argnums=(0, 1, 2))
  slow, text = _row_contracting_dots(grads(xla_attention), q, k, v)
  assert text.count(" dot(") >= 6 and not slow, slow
  # The check can fail: the reference's autodiff gradient, written naturally, is not so arranged by XLA here.
  plain = lambda q, k, v, causal: jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(
      jnp.einsum("bqhd,bkhd->bhqk", q, jnp.repeat(k, 2, axis=2)), axis=-1), jnp.repeat(v, 2, axis=2))
  assert _row_contracting_dots(grads(plain), q, k, v)[0]


@pytest.mark.parametrize("slices", [2, 3, 5])
def test_batch_slices_give_the_same_values_and_grads(slices):
  q, k, v, ct = attention_inputs(14, 5, 19, 19, 4, 2, 8)  # 5 rows: uneven slices for 2 and 3
  one = attention_value_and_grads(lambda *a: xla_attention(*a, score_mod=alibi, batch_slices=1), q, k, v, ct)
  many = attention_value_and_grads(lambda *a: xla_attention(*a, score_mod=alibi, batch_slices=slices), q, k, v, ct)
  for name, a, b in zip(("out", "dq", "dk", "dv"), one, many):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("slices", [0, 6, 1.5, "2"])
def test_bad_batch_slices_raise(slices):
  q, k, v, _ = attention_inputs(15, 5, 4, 4, 2, 2, 8)
  with pytest.raises(ValueError, match="batch_slices"):
    xla_attention(q, k, v, batch_slices=slices)
