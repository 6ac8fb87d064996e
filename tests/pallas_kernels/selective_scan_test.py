"""Tests for the Mamba-1 selective scan: the jnp reference against a float64 numpy loop (initial/final state,
groups, D, z gate, delta_bias + softplus, ragged chunks), state carrying across a split sequence, the Pallas
kernels (GPU and TPU variants in the Pallas interpreter) against the reference in value and gradient wrt
every input, impl="triton" refusing a non-GPU backend, and argument checking."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.ssm import selective_scan, selective_scan_reference
from testing_utils import value_and_grads

_ref = jax.jit(selective_scan_reference, static_argnames=("delta_softplus", "return_final_state"))
_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


def _inputs(seed, batch, seq, d_inner, groups, d_state):
  rng = np.random.default_rng(seed)
  f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  return dict(u=f(batch, seq, d_inner), delta=f(batch, seq, d_inner),
              A=-rng.uniform(0.2, 2.0, (d_inner, d_state)).astype(np.float32),
              B=f(batch, seq, groups, d_state), C=f(batch, seq, groups, d_state), D=f(d_inner),
              z=f(batch, seq, d_inner), delta_bias=f(d_inner), initial_state=f(batch, d_inner, d_state))


def _naive(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, initial_state=None):
  """The selective-scan recurrence, one step at a time, in float64."""
  u, delta, A, B, C = (np.asarray(v, np.float64) for v in (u, delta, A, B, C))
  batch, seq, d_inner = u.shape
  if delta_bias is not None:
    delta = delta + delta_bias
  if delta_softplus:
    delta = np.log1p(np.exp(delta))
  per_group = d_inner // B.shape[2]
  state = np.zeros((batch, d_inner, A.shape[1])) if initial_state is None else np.array(initial_state, np.float64)
  y = np.zeros_like(u)
  for t in range(seq):
    b_t, c_t = np.repeat(B[:, t], per_group, axis=1), np.repeat(C[:, t], per_group, axis=1)
    state = np.exp(delta[:, t, :, None] * A) * state + (delta[:, t] * u[:, t])[:, :, None] * b_t
    y[:, t] = (state * c_t).sum(-1)
    if D is not None:
      y[:, t] += D * u[:, t]
  if z is not None:
    y = y * z / (1 + np.exp(-z))
  return y, state


@pytest.mark.parametrize("seq,groups,options", [
    (37, 2, ("D", "z", "delta_bias", "softplus", "initial_state")),  # ragged against the 32-step chunk
    (12, 1, ()),  # delta used as given: keep it positive below
    (20, 3, ("softplus", "initial_state")),
    (9, 6, ("D", "delta_bias", "softplus")),  # one channel per group
])
def test_reference_matches_naive_loop(seq, groups, options):
  inp = _inputs(seq, 2, seq, 6, groups, 5)
  if "softplus" not in options:
    inp["delta"] = np.abs(inp["delta"])
  kw = {k: inp[k] for k in ("D", "z", "delta_bias", "initial_state") if k in options}
  args = [inp[k] for k in _NAMES[:5]]
  y, final = _ref(*args, **kw, delta_softplus="softplus" in options, return_final_state=True)
  y_ref, final_ref = _naive(*args, **kw, delta_softplus="softplus" in options)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(final, final_ref, rtol=1e-4, atol=1e-4)
  assert final.shape == (2, 6, 5)


def test_reference_carries_state_across_a_split_sequence():
  inp = _inputs(3, 1, 40, 4, 2, 4)
  kw = dict(D=inp["D"], delta_bias=inp["delta_bias"], delta_softplus=True)
  seq_args = lambda sl: [inp[k][:, sl] if k in ("u", "delta", "B", "C") else inp[k] for k in _NAMES[:5]]
  y_all, s_all = _ref(*seq_args(slice(None)), **kw, initial_state=inp["initial_state"], return_final_state=True)
  y1, s1 = _ref(*seq_args(slice(0, 17)), **kw, initial_state=inp["initial_state"], return_final_state=True)
  y2, s2 = _ref(*seq_args(slice(17, None)), **kw, initial_state=s1, return_final_state=True)
  np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_all, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(s2, s_all, rtol=1e-5, atol=1e-5)


_value_and_grads = value_and_grads


def _check_kernel_against_reference(backend, dtype, seq, d_inner, groups, rtol, atol, seed=0, **kernel_kw):
  inp = _inputs(seed, 2, seq, d_inner, groups, 6)
  args = tuple(jnp.asarray(inp[k], dtype) for k in _NAMES)

  def make(fn):
    return lambda u, dl, A, B, C, D, z, db, s0: fn(u, dl, A, B, C, D=D, z=z, delta_bias=db, delta_softplus=True,
                                                   initial_state=s0, return_final_state=True)

  rng = np.random.default_rng(seed + 1)
  cts = (jnp.asarray(rng.standard_normal(inp["u"].shape), dtype),
         jnp.asarray(rng.standard_normal(inp["initial_state"].shape), jnp.float32))
  if backend is None:
    kernel = functools.partial(selective_scan, impl="pallas_interpret")
  else:
    from pallas_kernels.ssm.selective_scan_pallas import selective_scan_pallas
    kernel = functools.partial(selective_scan_pallas, backend=backend, interpret=True, **kernel_kw)
  (y_r, s_r), grads_r = _value_and_grads(make(selective_scan_reference), args, cts)
  (y_k, s_k), grads_k = _value_and_grads(make(kernel), args, cts)
  assert y_k.dtype == dtype and s_k.dtype == jnp.float32
  f32 = lambda a: np.asarray(a, np.float32)
  np.testing.assert_allclose(f32(y_k), f32(y_r), rtol=rtol, atol=atol)
  np.testing.assert_allclose(s_k, s_r, rtol=rtol, atol=atol)
  for name, g_k, g_r in zip(_NAMES, grads_k, grads_r):
    scale = np.abs(f32(g_r)).max()
    np.testing.assert_allclose(f32(g_k) / scale, f32(g_r) / scale, rtol=rtol, atol=atol, err_msg=name)


# Ids avoid the words "gpu"/"tpu": conftest skips tests carrying those keywords.
@pytest.mark.parametrize("backend", ["gpu", "tpu"], ids=["triton_variant", "mosaic_variant"])
def test_pallas_kernel_matches_reference_values_and_gradients(backend):
  # 6 channels in 2 groups of 3 (padded per group to the channel block), ragged against 4-step chunks.
  _check_kernel_against_reference(backend, jnp.float32, seq=23, d_inner=6, groups=2, rtol=1e-5, atol=2e-5,
                                  block_d=2, chunk_t=4)


def test_pallas_kernel_through_entry_point():
  _check_kernel_against_reference(None, jnp.float32, seq=16, d_inner=8, groups=1, rtol=1e-5, atol=2e-5, seed=2)


def test_pallas_kernel_bf16_inputs():
  _check_kernel_against_reference("gpu", jnp.bfloat16, seq=12, d_inner=4, groups=2, rtol=2e-2, atol=2e-2,
                                  seed=4, chunk_t=4)


def test_triton_impl_refuses_a_non_gpu_backend():
  inp = _inputs(5, 1, 4, 2, 1, 2)
  with pytest.raises(ValueError, match="CUDA GPU"):
    selective_scan(*(inp[k] for k in _NAMES[:5]), impl="triton")


@pytest.mark.parametrize("change,match", [
    (dict(impl="bogus"), "unknown impl"),
    (dict(B=np.zeros((1, 8, 3, 4), np.float32), C=np.zeros((1, 8, 3, 4), np.float32)), "groups"),
    (dict(delta=np.zeros((1, 8, 5), np.float32)), "delta must"),
    (dict(A=np.zeros((4, 3), np.float32)), "B must be"),
    (dict(D=np.zeros((5,), np.float32)), "D must"),
    (dict(z=np.zeros((1, 7, 4), np.float32)), "z must"),
    (dict(initial_state=np.zeros((1, 4, 5), np.float32)), "initial_state"),
    (dict(impl="pallas"), "pallas_interpret"),  # compiled Pallas on this CPU host
])
def test_bad_arguments_raise_value_error(change, match):
  inp = _inputs(6, 1, 8, 4, 2, 4)
  kw = {k: inp[k] for k in _NAMES[:5]}
  kw.update(change)
  with pytest.raises(ValueError, match=match):
    selective_scan(**kw)
