"""Tests for SequenceClassifier: pooling, padding, single and dual tower."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.models import SequenceClassifier, preset_config


def make(layout="AM", **kwargs):
  return SequenceClassifier(layout, preset_config("tiny", ssm_chunk_size=4), num_classes=3, rngs=nnx.Rngs(0),
                            **kwargs)


def tokens(batch=2, seq=9, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, seq), 1, 64)


def test_mean_pooling_ignores_padding_for_position_wise_layouts():
  model = make("MM")
  toks = tokens()
  padded = jnp.concatenate([toks, jnp.zeros((2, 5), jnp.int32)], axis=1)
  np.testing.assert_allclose(np.asarray(model(padded)), np.asarray(model(toks)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bidirectional_encoder_uses_every_token(pooling):
  model = make("AM", pooling=pooling)
  toks = tokens()
  changed = toks.at[:, -1].set((toks[:, -1] % 63) + 1)
  logits = model(toks)
  assert logits.shape == (2, 3) and logits.dtype == jnp.float32
  assert np.max(np.abs(np.asarray(model(changed) - logits))) > 1e-6


def test_cls_pooling_with_causal_attention_sees_nothing_after_it():
  model = make("AM", pooling="cls", causal=True)
  toks = tokens()
  np.testing.assert_allclose(np.asarray(model(toks)), np.asarray(model(tokens(seed=3))), rtol=1e-6, atol=1e-6)


def test_dual_tower_uses_both_documents_and_is_order_sensitive():
  model = make("AMS", dual=True)
  a, b = tokens(seed=1), tokens(seq=7, seed=2)
  logits = model(a, b)
  assert logits.shape == (2, 3)
  assert np.max(np.abs(np.asarray(model(a, a) - logits))) > 1e-6
  assert np.max(np.abs(np.asarray(model(b, a) - logits))) > 1e-6
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(a, b))))(model)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_classes must be at least 2"):
    SequenceClassifier("AM", preset_config("tiny"), num_classes=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="pooling must be 'mean' or 'cls'"):
    make(pooling="max")
  with pytest.raises(ValueError, match="dual-tower classifier takes two token arrays"):
    make(dual=True)(tokens())
  with pytest.raises(ValueError, match="dual-tower"):
    make()(tokens(), tokens())
