"""GPU tests of the compiled Pallas kernels (impl="pallas", Triton lowering), marked `gpu` (run with --run-gpu).

flash_attention (split and fused backward; and impl="mosaic" in bfloat16 and float16), ssd and selective_scan in
float32 and bfloat16 on fresh random inputs with ragged lengths: the output and the gradient wrt every input (vjp
with a random cotangent) against the reference run in float32, highest matmul precision, on the upcast inputs.
Relative error ||got - want|| / ||want|| of each array must stay below 2e-3 in float32 (Triton dots may run in tf32),
2e-2 in bfloat16 and 1e-2 in float16. As in the Mamba layers, the SSM parameters (A, D, delta_bias, initial state;
SSD's dt) stay float32 in the bfloat16 runs.
The scans also run with impl="triton" (their raw Triton forward kernels; needs jax-triton, the `[gpu]` extra).

Dry run on CPU: AIRA_GPU_TEST_IMPL=pallas_interpret runs the same bodies through the Pallas interpreter on
tiny shapes (`AIRA_GPU_TEST_IMPL=pallas_interpret pytest --run-gpu tests/pallas_kernels/gpu_kernels_test.py`).
"""

import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from pallas_kernels import (attention_reference, flash_attention, selective_scan, selective_scan_reference, ssd,
                            ssd_reference)
from pallas_kernels.attention import BlockSizes, MosaicBlocks, tiling
from testing_utils import value_and_grads

IMPL = os.environ.get("AIRA_GPU_TEST_IMPL", "pallas")
TINY = IMPL == "pallas_interpret"
DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16}
MOSAIC_DTYPES = {"bf16": jnp.bfloat16, "f16": jnp.float16}  # impl="mosaic" takes 16-bit inputs only
TOL = {"f32": 2e-3, "bf16": 2e-2, "f16": 1e-2}

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_a_gpu():
  if IMPL == "pallas" and jax.default_backend() != "gpu":
    pytest.skip(f"impl='pallas' needs a GPU backend here (this is {jax.default_backend()!r}); "
                "AIRA_GPU_TEST_IMPL=pallas_interpret runs these bodies in the interpreter")


_value_and_grads = value_and_grads


def _rel_err(got, want):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  if not np.isfinite(got).all():
    return float("nan")
  return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def _check(kernel, reference, names, inputs, low, dtype_name, case_id):
  """Compares kernel and reference (value and vjp). inputs: float32 numpy; low[i]: input i takes the tested
  dtype (else float32)."""
  dtype = {**DTYPES, **MOSAIC_DTYPES}[dtype_name]
  rng = np.random.default_rng(zlib.crc32(f"{case_id}-{dtype_name}".encode()))
  args = tuple(jnp.asarray(x, dtype if lo else jnp.float32) for x, lo in zip(inputs(rng), low))
  out_spec = jax.eval_shape(kernel, *args)
  cts = jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape, np.float32), s.dtype), out_spec)
  out, grads = _value_and_grads(kernel, args, cts)
  up = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float32), tree)
  with jax.default_matmul_precision("highest"):
    want_out, want_grads = _value_and_grads(reference, up(args), up(cts))

  out_leaves = jax.tree.leaves(out)
  out_names = ["out"] if len(out_leaves) == 1 else ["out", "final_state"]
  errs = {}
  for name, got, want, spec in zip(out_names, out_leaves, jax.tree.leaves(want_out), jax.tree.leaves(out_spec)):
    assert got.shape == spec.shape and got.dtype == spec.dtype, name
    errs[name] = _rel_err(got, want)
  for name, got, want, arg in zip(names, grads, want_grads, args):
    assert got.shape == arg.shape and got.dtype == arg.dtype, f"d{name}: {got.shape} {got.dtype}"
    errs[f"d{name}"] = _rel_err(got, want)
  report = ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
  bad = [k for k, v in errs.items() if not v < TOL[dtype_name]]
  assert not bad, f"{bad} over {TOL[dtype_name]:g} (NaN counts as over); all: {report}"


def _alibi(s, q_idx, kv_idx, head):
  slope = jnp.exp2(-0.5 * (head + 1).astype(jnp.float32))
  return s - slope * jnp.abs(q_idx - kv_idx).astype(jnp.float32)


def _documents(size):
  return lambda q_idx, kv_idx, head: lax.div(q_idx, size) == lax.div(kv_idx, size)


# id: (GPU shape, tiny shape, GPU options, tiny options); shape = (batch, q_len, kv_len, heads, kv_heads, head_dim).
ATTENTION = {
    "causal_gqa4": ((2, 300, 300, 8, 2, 64), (1, 37, 37, 4, 1, 16), dict(causal=True), dict(causal=True)),
    "decode_window_softcap_d96": ((1, 200, 333, 4, 4, 96), (1, 20, 37, 2, 2, 24),
                                  dict(causal=True, sliding_window=100, softcap=20.0),
                                  dict(causal=True, sliding_window=9, softcap=5.0)),
    "hooks_noncausal": ((1, 256, 256, 4, 1, 64), (1, 24, 24, 2, 1, 16),
                        dict(causal=False, score_mod=_alibi, mask_mod=_documents(64)),
                        dict(causal=False, score_mod=_alibi, mask_mod=_documents(7))),
}


@pytest.mark.parametrize("backward", ["split", "fused"])
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("case_id", ATTENTION)
def test_flash_attention(case_id, dtype_name, backward):
  gpu_shape, tiny_shape, gpu_kw, tiny_kw = ATTENTION[case_id]
  b, lq, lk, h, kv, d = tiny_shape if TINY else gpu_shape
  kw = tiny_kw if TINY else gpu_kw
  sizes = BlockSizes(backward=backward)  # default blocks either way

  def inputs(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return f(b, lq, h, d), f(b, lk, kv, d), f(b, lk, kv, d)

  kernel = lambda q, k, v: flash_attention(q, k, v, impl=IMPL, block_sizes=sizes, **kw)
  reference = lambda q, k, v: attention_reference(q, k, v, **kw)
  _check(kernel, reference, ("q", "k", "v"), inputs, (True,) * 3, dtype_name, case_id)


@pytest.mark.parametrize("dtype_name", MOSAIC_DTYPES)
@pytest.mark.parametrize("case_id", [*ATTENTION, "causal_d128_blocks"])
def test_flash_attention_mosaic(case_id, dtype_name):
  """impl="mosaic" (Hopper kernels in Pallas Mosaic GPU; 16-bit inputs only) on the same cases, plus head_dim 128
  with non-default blocks. Needs an sm_90 GPU: jax's GPU interpreter cannot run these kernels."""
  if TINY or tiling.gpu_capability_major() != 9:
    pytest.skip("impl='mosaic' needs a Hopper (sm_90) GPU; the interpreter cannot run it")
  blocks = None
  if case_id == "causal_d128_blocks":
    (b, lq, lk, h, kv, d), kw = (2, 1000, 1000, 8, 4, 128), dict(causal=True)
    blocks = MosaicBlocks(forward_q=128, forward_kv=64, dq_kv=128, dkdv_kv=128, stages=2)
  else:
    (b, lq, lk, h, kv, d), _, kw, _ = ATTENTION[case_id]

  def inputs(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return f(b, lq, h, d), f(b, lk, kv, d), f(b, lk, kv, d)

  kernel = lambda q, k, v: flash_attention(q, k, v, impl="mosaic", block_sizes=blocks, **kw)
  reference = lambda q, k, v: attention_reference(q, k, v, **kw)
  _check(kernel, reference, ("q", "k", "v"), inputs, (True,) * 3, dtype_name, case_id)


# id: (GPU, tiny) as (batch, seq, heads, head_dim, groups, d_state, chunk, D/initial/final state).
SSD = {
    "ragged_groups_state": ((2, 300, 8, 64, 2, 64, 64, True), (2, 37, 4, 20, 2, 8, 8, True)),
    "chunk128_p48_plain": ((1, 1000, 4, 48, 1, 128, 128, False), (1, 20, 2, 12, 1, 16, 16, False)),
}


def _triton_impl_or_skip(impl):
  """impl as given for "triton" (skipping where it cannot run), else the module's Pallas impl."""
  if impl != "triton":
    return IMPL
  if TINY:
    pytest.skip("the raw Triton kernels have no Pallas interpreter (tests/pallas_kernels/triton_interpreter_test.py)")
  pytest.importorskip("jax_triton", reason="impl='triton' needs the [gpu] extra (jax-triton)")
  return impl


@pytest.mark.parametrize("impl", ["pallas", "triton"])
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("case_id", SSD)
def test_ssd(case_id, dtype_name, impl):
  impl = _triton_impl_or_skip(impl)
  b, seq, h, p, g, n, chunk, extras = SSD[case_id][1 if TINY else 0]

  def inputs(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return (f(b, seq, h, p), rng.uniform(0.01, 0.2, (b, seq, h)).astype(np.float32),
            -rng.uniform(1.0, 8.0, (h,)).astype(np.float32), f(b, seq, g, n), f(b, seq, g, n), f(h),
            f(b, h, p, n))

  def make(fn, **kw):
    if extras:
      return lambda x, dt, A, B, C, D, s0: fn(x, dt, A, B, C, D=D, initial_state=s0, chunk_size=chunk,
                                              return_final_state=True, **kw)
    return lambda x, dt, A, B, C, D, s0: fn(x, dt, A, B, C, chunk_size=chunk, **kw)

  names = ("x", "dt", "A", "B", "C", "D", "initial_state")
  low = (True, False, False, True, True, False, False)
  _check(make(ssd, impl=impl), make(ssd_reference), names, inputs, low, dtype_name, case_id)


# id: (GPU, tiny) as (batch, seq, d_inner, groups, d_state, z/initial/final state).
SELECTIVE_SCAN = {
    "all_options": ((2, 300, 256, 1, 16, True), (2, 23, 8, 1, 6, True)),
    "groups_ragged_n12": ((1, 517, 96, 2, 12, False), (1, 12, 6, 2, 4, False)),
}


@pytest.mark.parametrize("impl", ["pallas", "triton"])
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("case_id", SELECTIVE_SCAN)
def test_selective_scan(case_id, dtype_name, impl):
  impl = _triton_impl_or_skip(impl)
  b, seq, d, g, n, extras = SELECTIVE_SCAN[case_id][1 if TINY else 0]

  def inputs(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return (f(b, seq, d), 0.5 * f(b, seq, d), -rng.uniform(1.0, n + 1.0, (d, n)).astype(np.float32),
            f(b, seq, g, n), f(b, seq, g, n), f(d), rng.uniform(-4.0, -1.0, (d,)).astype(np.float32),
            f(b, seq, d), f(b, d, n))

  def make(fn, **kw):
    if extras:
      return lambda u, dl, A, B, C, D, db, z, s0: fn(u, dl, A, B, C, D=D, delta_bias=db, delta_softplus=True,
                                                     z=z, initial_state=s0, return_final_state=True, **kw)
    return lambda u, dl, A, B, C, D, db, z, s0: fn(u, dl, A, B, C, D=D, delta_bias=db, delta_softplus=True,
                                                   **kw)

  names = ("u", "delta", "A", "B", "C", "D", "delta_bias", "z", "initial_state")
  low = (True, True, False, True, True, False, False, True, False)
  _check(make(selective_scan, impl=impl), make(selective_scan_reference), names, inputs, low, dtype_name,
         case_id)
