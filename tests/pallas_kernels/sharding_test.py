"""Kernels inside shard_map on 8 fake CPU devices equal the unsharded reference (interpret mode)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import pallas_kernels as pk
from pallas_kernels.sharding import mesh_axes, sharded_flash_attention, sharded_ssd
from testing_utils import random_ssd_inputs


def make_mesh(shape=(2, 2, 2)):
  return jax.make_mesh(shape, ("data", "fsdp", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 3)


def test_mesh_axes_skip_size_one_axes():
  assert mesh_axes(make_mesh((2, 2, 2))) == (("data", "fsdp"), "tensor")
  assert mesh_axes(make_mesh((8, 1, 1))) == (("data",), None)
  assert mesh_axes(make_mesh((1, 1, 8))) == (None, "tensor")


@pytest.mark.parametrize("impl", ["xla", "pallas_interpret"])
def test_sharded_attention_equals_unsharded(impl):
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (4, 24, 4, 8))
  k = jax.random.normal(keys[1], (4, 24, 2, 8))
  v = jax.random.normal(keys[2], (4, 24, 2, 8))
  expected = pk.attention_reference(q, k, v, causal=True, sliding_window=9)
  fn = jax.jit(lambda q, k, v: sharded_flash_attention(q, k, v, mesh=make_mesh(), causal=True, sliding_window=9,
                                                       impl=impl, block_q=8, block_k=8))
  np.testing.assert_allclose(np.asarray(fn(q, k, v)), np.asarray(expected), rtol=1e-5, atol=1e-5)
  grads = jax.jit(jax.grad(lambda q: jnp.sum(sharded_flash_attention(q, k, v, mesh=make_mesh(), impl=impl,
                                                                     block_q=8, block_k=8) ** 2)))(q)
  ref = jax.grad(lambda q: jnp.sum(pk.attention_reference(q, k, v) ** 2))(q)
  np.testing.assert_allclose(np.asarray(grads), np.asarray(ref), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_sharded_ssd_equals_unsharded(groups):
  inputs = random_ssd_inputs(1, batch=4, seq=20, heads=4, head_dim=4, groups=groups, d_state=4)
  x, dt, a, bb, cc, d, state = (jnp.asarray(inputs[k]) for k in ("x", "dt", "A", "B", "C", "D", "initial_state"))
  expected = pk.ssd_reference(x, dt, a, bb, cc, D=d, initial_state=state, chunk_size=8, return_final_state=True)
  got = jax.jit(lambda *args: sharded_ssd(*args, mesh=make_mesh(), D=d, initial_state=state, chunk_size=8,
                                          return_final_state=True, impl="pallas_interpret"))(x, dt, a, bb, cc)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-4)


def test_indivisible_heads_are_refused():
  q = jnp.ones((4, 8, 3, 8))
  with pytest.raises(ValueError, match=r"kv_heads \(3\) is not divisible"):
    sharded_flash_attention(q, q, q, mesh=make_mesh(), impl="xla")


def test_model_under_a_mesh_uses_sharded_kernels_and_matches_xla():
  from aira_jax.models import LanguageModel, preset_config
  config = preset_config("tiny", num_kv_heads=2, ssm_chunk_size=8, ssm_groups=2)
  tokens = jax.random.randint(jax.random.key(0), (4, 16), 0, 64)
  reference = LanguageModel("AS", config, rngs=nnx.Rngs(0))
  kernels = LanguageModel("AS", config.replace(attention_impl="pallas_interpret", scan_impl="pallas_interpret"),
                          rngs=nnx.Rngs(0))
  expected = jax.jit(lambda t: reference(t))(tokens)
  mesh = make_mesh()
  with jax.set_mesh(mesh):
    jaxpr = str(jax.make_jaxpr(lambda t: kernels(t))(tokens))
    got = jax.jit(lambda t: kernels(t))(tokens)
  assert jaxpr.count("shard_map") >= 2  # attention and the scan each ran per shard
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-4)
