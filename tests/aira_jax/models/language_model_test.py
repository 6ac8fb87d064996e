"""Tests for LanguageModel: causality of mixed layouts, jit and grad, options, and a sharded (2,2,2) mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.models import LanguageModel, preset_config
from aira_jax.sharding import MESH_AXES, shard_state, state_shardings
from testing_utils import assert_causal


def make(layout, **changes):
  return LanguageModel(layout, preset_config("tiny", ssm_chunk_size=4, **changes), rngs=nnx.Rngs(0))


def tokens(batch=2, seq=12, seed=0):
  return jax.random.randint(jax.random.key(seed), (batch, seq), 0, 64)


@pytest.mark.parametrize("layout", ["A", "M", "S", "AMSM", "2S+A+M", "MAS"])
def test_mixed_layouts_are_causal(layout):
  model = make(layout)
  forward = jax.jit(lambda t: model(t))
  for position in (0, 5, 11):
    if layout == "M" and position > 0:
      continue  # an MLP-only model is position-wise: nothing to leak, checked at one position
    assert_causal(forward, tokens(), position, atol=1e-5)


def test_jit_matches_eager_and_grads_reach_every_parameter():
  model = make("AMSM", tie_embeddings=False, qk_norm=True)
  graphdef, state = nnx.split(model)
  toks = tokens()

  def loss(state):
    logits = nnx.merge(graphdef, state)(toks[:, :-1])
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), toks[:, 1:, None], axis=-1))

  eager = model(toks[:, :3])
  np.testing.assert_allclose(np.asarray(jax.jit(lambda s: nnx.merge(graphdef, s)(toks[:, :3]))(state)),
                             np.asarray(eager), rtol=1e-5, atol=1e-5)
  value, grads = jax.jit(jax.value_and_grad(loss))(state)
  assert np.isfinite(value) and abs(float(value) - np.log(64)) < 0.5  # near-uniform at init
  for path, grad in nnx.to_flat_state(grads):
    grad = np.asarray(grad.get_value())
    assert np.all(np.isfinite(grad)), path
    assert np.max(np.abs(grad)) > 0, f"no gradient reaches {path}"


def test_tied_and_untied_heads_and_softcap():
  tied, untied = make("AM"), make("AM", tie_embeddings=False)
  assert not hasattr(tied, "head") and untied.head[...].shape == (32, 64)
  capped = make("AM", logit_softcap=0.5)
  capped.embed[...] = capped.embed[...] * 100  # large logits
  logits = capped(tokens())
  assert float(jnp.max(jnp.abs(logits))) <= 0.5 and float(jnp.max(jnp.abs(logits))) > 0.4


def test_bfloat16_compute_is_close_to_float32():
  full, half = make("AMS"), make("AMS", dtype="bfloat16")
  logits_full, logits_half = full(tokens()), half(tokens())
  assert logits_half.dtype == jnp.float32
  assert half.embed[...].dtype == jnp.float32  # parameters stay float32
  np.testing.assert_allclose(np.asarray(logits_half), np.asarray(logits_full), atol=0.05, rtol=0.05)


def test_bad_token_shape():
  with pytest.raises(ValueError, match="tokens must be"):
    make("AM")(jnp.zeros((4,), jnp.int32))


def test_forward_on_a_2x2x2_mesh_with_sharded_parameters():
  mesh = jax.make_mesh((2, 2, 2), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3)
  model = LanguageModel("AMSM", preset_config("tiny", num_kv_heads=4, ssm_chunk_size=4), rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  toks = tokens(batch=4)
  expected = np.asarray(jax.jit(lambda s, t: nnx.merge(graphdef, s)(t))(state, toks))

  sharded = shard_state(state, mesh)
  specs = {path: leaf.sharding.spec for path, leaf in nnx.to_flat_state(sharded)}
  assert specs[("embed",)] == jax.sharding.PartitionSpec("tensor", "fsdp")
  assert specs[("layers", 0, "wq")] == jax.sharding.PartitionSpec("fsdp", "tensor", None)
  assert specs[("layers", 1, "w_down")] == jax.sharding.PartitionSpec("tensor", "fsdp")
  assert specs[("layers", 2, "w_x")] == jax.sharding.PartitionSpec("fsdp", "tensor")
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
  forward = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t),
                    in_shardings=(state_shardings(state, mesh), batch_sharding))
  got = forward(sharded, jax.device_put(toks, batch_sharding))
  assert len(got.sharding.device_set) == 8
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
