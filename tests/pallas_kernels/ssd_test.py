"""Tests for the Mamba-2 SSD scan: the chunked jnp reference against a float64 numpy loop (initial/final
state, ragged lengths, groups, D), chunk-size invariance and state carrying across a split sequence, the Pallas
kernels (both the GPU and the TPU variant, run by the Pallas interpreter) against the reference in value and
in gradient wrt every input, and argument checking."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallas_kernels.ssm import ssd, ssd_reference
from testing_utils import random_ssd_inputs, value_and_grads

# jit with static options: eager op-by-op dispatch would dominate these small tests.
_ref = jax.jit(ssd_reference, static_argnames=("chunk_size", "return_final_state"))


_inputs = random_ssd_inputs


def _naive(x, dt, A, B, C, D=None, initial_state=None):
  """The SSD recurrence, one step at a time, in float64."""
  x, dt, A, B, C = (np.asarray(v, np.float64) for v in (x, dt, A, B, C))
  batch, seq, heads, head_dim = x.shape
  d_state = B.shape[-1]
  per_group = heads // B.shape[2]
  state = (np.zeros((batch, heads, head_dim, d_state)) if initial_state is None
           else np.array(initial_state, np.float64))
  y = np.zeros_like(x)
  for t in range(seq):
    for h in range(heads):
      g = h // per_group
      decay = np.exp(dt[:, t, h] * A[h])[:, None, None]
      state[:, h] = decay * state[:, h] + dt[:, t, h, None, None] * x[:, t, h, :, None] * B[:, t, g, None, :]
      y[:, t, h] = np.einsum("bpn,bn->bp", state[:, h], C[:, t, g])
      if D is not None:
        y[:, t, h] += D[h] * x[:, t, h]
  return y, state


def _split(inp):
  return (inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"]), dict(D=inp["D"], initial_state=inp["initial_state"])


@pytest.mark.parametrize("seq,chunk,groups,use_d,use_init", [
    (37, 8, 2, True, True),  # ragged: 37 = 4 chunks of 8 + 5
    (16, 16, 1, False, False),
    (5, 64, 4, True, False),  # shorter than one chunk
    (24, 8, 1, False, True),
])
def test_reference_matches_naive_loop(seq, chunk, groups, use_d, use_init):
  inp = _inputs(seq + groups, 2, seq, 4, 5, groups, 6)
  args, kw = _split(inp)
  kw = dict(D=kw["D"] if use_d else None, initial_state=kw["initial_state"] if use_init else None)
  y, final = _ref(*args, **kw, chunk_size=chunk, return_final_state=True)
  y_ref, final_ref = _naive(*args, **kw)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(final, final_ref, rtol=1e-4, atol=1e-4)
  assert y.dtype == jnp.float32 and final.shape == (2, 4, 5, 6)


@settings(max_examples=6, deadline=None)
@given(seq=st.integers(1, 20), chunk=st.integers(1, 12), groups=st.sampled_from([1, 2]), seed=st.integers(0, 99))
def test_reference_matches_naive_loop_on_random_shapes(seq, chunk, groups, seed):
  args, kw = _split(_inputs(seed, 1, seq, 2, 3, groups, 4))
  y, final = _ref(*args, **kw, chunk_size=chunk, return_final_state=True)
  y_ref, final_ref = _naive(*args, **kw)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(final, final_ref, rtol=1e-4, atol=1e-4)


def test_reference_is_chunk_size_invariant():
  args, kw = _split(_inputs(1, 2, 40, 2, 4, 1, 4))
  outs = [_ref(*args, **kw, chunk_size=c, return_final_state=True) for c in (1, 8, 13, 64)]
  for y, final in outs[1:]:
    np.testing.assert_allclose(y, outs[0][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, outs[0][1], rtol=1e-4, atol=1e-4)


def test_reference_carries_state_across_a_split_sequence():
  args, kw = _split(_inputs(2, 1, 36, 4, 4, 2, 8))
  y_all, final_all = _ref(*args, **kw, chunk_size=8, return_final_state=True)
  first = [a[:, :21] if a.ndim > 1 else a for a in args]
  second = [a[:, 21:] if a.ndim > 1 else a for a in args]
  y1, s1 = _ref(*first, **kw, chunk_size=8, return_final_state=True)
  y2, s2 = _ref(*second, D=kw["D"], initial_state=s1, chunk_size=8, return_final_state=True)
  np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_all, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(s2, final_all, rtol=1e-5, atol=1e-5)


_value_and_grads = value_and_grads


def _check_kernel_against_reference(backend, dtype, seq, chunk, groups, rtol, atol, seed=0, head_dim=8,
                                    d_state=8, **kernel_kw):
  inp = _inputs(seed, 2, seq, 4, head_dim, groups, d_state)
  args = tuple(jnp.asarray(inp[k], dtype) for k in ("x", "dt", "A", "B", "C", "D", "initial_state"))

  def make(fn, **kw):
    return lambda x, dt, A, B, C, D, s0: fn(x, dt, A, B, C, D=D, initial_state=s0, chunk_size=chunk,
                                            return_final_state=True, **kw)

  rng = np.random.default_rng(seed + 1)
  cts = (jnp.asarray(rng.standard_normal(inp["x"].shape), dtype),
         jnp.asarray(rng.standard_normal(inp["initial_state"].shape), jnp.float32))
  ref = make(ssd_reference)
  kernel = make(functools.partial(ssd, impl="pallas_interpret") if backend is None else
                functools.partial(_ssd_pallas(), backend=backend, interpret=True, **kernel_kw))
  (y_r, s_r), grads_r = _value_and_grads(ref, args, cts)
  (y_k, s_k), grads_k = _value_and_grads(kernel, args, cts)
  assert y_k.dtype == dtype and s_k.dtype == jnp.float32
  f32 = lambda a: np.asarray(a, np.float32)
  np.testing.assert_allclose(f32(y_k), f32(y_r), rtol=rtol, atol=atol)
  np.testing.assert_allclose(s_k, s_r, rtol=rtol, atol=atol)
  for name, g_k, g_r in zip(("x", "dt", "A", "B", "C", "D", "initial_state"), grads_k, grads_r):
    scale = np.abs(f32(g_r)).max()
    np.testing.assert_allclose(f32(g_k) / scale, f32(g_r) / scale, rtol=rtol, atol=atol, err_msg=name)


def _ssd_pallas():
  from pallas_kernels.ssm.ssd_pallas import ssd_pallas
  return ssd_pallas


# Ids avoid the words "gpu"/"tpu": conftest skips tests carrying those keywords.
@pytest.mark.parametrize("backend", ["gpu", "tpu"], ids=["triton_variant", "mosaic_variant"])
def test_pallas_kernel_matches_reference_values_and_gradients(backend):
  # GPU variant: head_dim 20 padded to 32 and split in two blocks of 16 in both the forward and the backward
  # (whose dB, dC, d dt, d a_cum shares are summed), d_state and chunk padded to 16.
  # TPU variant keeps the sizes. seq 37 is ragged.
  _check_kernel_against_reference(backend, jnp.float32, seq=37, chunk=8, groups=2, rtol=1e-5, atol=2e-5,
                                  head_dim=20 if backend == "gpu" else 8, block_p=16, block_p_bwd=16)


def test_pallas_backward_over_chunks_and_state_sweep_blocks(monkeypatch):
  # GPU variant: the backward's state-cotangent sweep carries an initial-state and a final-state cotangent
  # back over 4 chunks of 16 in (16, 16) blocks of the padded (32, 64) state (head_dim 20, d_state 40), and the
  # chunk-parallel kernel takes head_dim blocks of 16, so each program sees a nonzero entry state and exit
  # cotangent.
  from pallas_kernels.ssm import ssd_pallas as ssd_pallas_module
  monkeypatch.setitem(ssd_pallas_module.STATE_SWEEP_BLOCK, "gpu", (16, 16))
  _check_kernel_against_reference("gpu", jnp.float32, seq=64, chunk=16, groups=2, rtol=1e-5, atol=2e-5, seed=11,
                                  head_dim=20, d_state=40, block_p=32, block_p_bwd=16)


def test_pallas_kernel_through_entry_point_single_group():
  _check_kernel_against_reference(None, jnp.float32, seq=20, chunk=16, groups=1, rtol=1e-5, atol=2e-5, seed=3)


def test_pallas_kernel_bf16_inputs():
  _check_kernel_against_reference("tpu", jnp.bfloat16, seq=24, chunk=8, groups=4, rtol=2e-2, atol=2e-2, seed=5)


def test_entry_point_xla_equals_reference():
  args, kw = _split(_inputs(7, 1, 12, 2, 4, 1, 4))
  np.testing.assert_array_equal(ssd(*args, **kw, chunk_size=4, impl="xla"),
                                ssd_reference(*args, **kw, chunk_size=4))


@pytest.mark.parametrize("change,match", [
    (dict(impl="bogus"), "unknown impl"),
    (dict(impl="triton"), "CUDA GPU"),  # the raw Triton forward, on this CPU host
    (dict(B=np.zeros((1, 12, 3, 4), np.float32), C=np.zeros((1, 12, 3, 4), np.float32)), "groups"),
    (dict(dt=np.zeros((1, 11, 2), np.float32)), "dt must be"),
    (dict(A=np.zeros((3,), np.float32)), "A must be"),
    (dict(initial_state=np.zeros((1, 2, 4, 5), np.float32)), "initial_state"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(impl="pallas"), "pallas_interpret"),  # compiled Pallas on this CPU host
])
def test_bad_arguments_raise_value_error(change, match):
  inp = _inputs(8, 1, 12, 2, 4, 1, 4)
  kw = dict(x=inp["x"], dt=inp["dt"], A=inp["A"], B=inp["B"], C=inp["C"])
  kw.update(change)
  with pytest.raises(ValueError, match=match):
    ssd(**kw)
