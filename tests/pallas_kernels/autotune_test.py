"""Tests for `pallas_kernels.attention.autotune` in the Pallas interpreter (its timings mean nothing there; the
choice logic, the correctness screen and the result's use are what is checked)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.attention import BlockSizes, KernelBlocks, Trial, attention_reference, autotune, flash_attention
from pallas_kernels.attention.autotuning import GPU_CANDIDATES_FLOAT32, _kernels_to_tune, default_candidates
from pallas_kernels.attention import tiling

CANDIDATES = {
    "forward": [KernelBlocks(16, 16), KernelBlocks(32, 16)],
    "dkdv": [KernelBlocks(8, 16), KernelBlocks(16, 16, num_warps=3), KernelBlocks(32, 32)],
    "dq": [KernelBlocks(16, 8), KernelBlocks(24, 16)],
}


def _inputs(seed, q_len=37, kv_len=37, heads=4, kv_heads=2, dim=16):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.standard_normal(s, np.float32))
  return f(1, q_len, heads, dim), f(1, kv_len, kv_heads, dim), f(1, kv_len, kv_heads, dim)


def alibi(s, q_idx, kv_idx, head):
  return s - 0.25 * (head + 1).astype(jnp.float32) * (q_idx - kv_idx).astype(jnp.float32)


@pytest.mark.parametrize("kw", [dict(causal=True, sliding_window=9), dict(causal=False, score_mod=alibi)],
                         ids=["causal-window", "alibi"])
def test_picks_the_fastest_correct_candidate_and_the_result_is_exact(kw):
  q, k, v = _inputs(1)
  best, trials = autotune(q, k, v, candidates=CANDIDATES, backward="split", interpret=True, target_s=0.01, **kw)
  assert [t.kernel for t in trials] == ["forward"] * 2 + ["dkdv"] * 3 + ["dq"] * 2
  failed = [t for t in trials if t.status.startswith("FAIL")]
  assert [t.blocks for t in failed] == [KernelBlocks(16, 16, num_warps=3)] and "num_warps" in failed[0].status
  assert best.backward == "split"
  for name in ("forward", "dkdv", "dq"):
    ok = [t for t in trials if t.kernel == name and t.status == "ok"]
    assert ok and all(t.max_err < 2e-3 and t.ms > 0 for t in ok)
    assert getattr(best, name) == min(ok, key=lambda t: t.ms).blocks
  attend = functools.partial(flash_attention, impl="pallas_interpret", block_sizes=best, **kw)
  got = jax.grad(lambda *a: attend(*a).sum(), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(lambda *a: attention_reference(*a, **kw).sum(), argnums=(0, 1, 2))(q, k, v)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


def test_fused_backward_alone_is_tuned_and_its_result_is_exact():
  q, k, v = _inputs(5)
  candidates = {"forward": [KernelBlocks(16, 16)], "fused": [KernelBlocks(8, 16), KernelBlocks(16, 16)]}
  best, trials = autotune(q, k, v, candidates=candidates, backward="fused", interpret=True, target_s=0.01)
  assert [t.kernel for t in trials] == ["forward", "fused", "fused"]
  assert all(t.status == "ok" and t.max_err < 2e-3 for t in trials)
  assert best.backward == "fused" and best.fused == min(trials[1:], key=lambda t: t.ms).blocks
  attend = functools.partial(flash_attention, impl="pallas_interpret", block_sizes=best)
  got = jax.grad(lambda *a: attend(*a).sum(), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(lambda *a: attention_reference(*a).sum(), argnums=(0, 1, 2))(q, k, v)
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dkdv_ms,fused_ms,want", [(2.0, 2.9, "fused"), (2.0, 3.1, "split"), (2.0, None, "split"),
                                                   (None, 9.0, "fused"), (None, None, None)])
def test_fused_backward_is_chosen_only_when_faster_than_dkdv_and_dq_together(dkdv_ms, fused_ms, want):
  """dq takes 1 ms; None = no correct candidate of that kernel (then the backend's default backward runs)."""
  from pallas_kernels.attention.autotuning import _choose_backward
  trial = lambda name, ms: None if ms is None else Trial(name, KernelBlocks(), "ok", ms, 0.0)
  best = {"dkdv": trial("dkdv", dkdv_ms), "dq": trial("dq", 1.0), "fused": trial("fused", fused_ms)}
  assert _choose_backward(best) == want


def test_wrong_results_are_never_chosen():
  """tolerance 0: every candidate's result counts as wrong, so each kernel keeps its default (split backward)."""
  q, k, v = _inputs(2)
  best, trials = autotune(q, k, v, candidates=CANDIDATES, interpret=True, target_s=0.01, tolerance=0.0)
  assert best == BlockSizes()
  assert all(t.status.startswith(("ERR", "FAIL")) for t in trials)


def test_time_budget_skips_candidates():
  q, k, v = _inputs(3)
  seen = []
  best, trials = autotune(q, k, v, candidates=CANDIDATES, interpret=True, budget_s=0.0, on_trial=seen.append)
  assert best == BlockSizes() and seen == trials
  assert {t.status for t in trials} == {"skip: time budget"}


@pytest.mark.parametrize("kwargs,match", [
    (dict(candidates={"backward": [KernelBlocks(16, 16)]}, interpret=True), "unknown kernels"),
    (dict(interpret=False), "no lowering for backend 'cpu'"),
    (dict(backward="both", interpret=True), "backward must be one of"),
])
def test_bad_arguments_raise(kwargs, match):
  q, k, v = _inputs(4)
  with pytest.raises(ValueError, match=match):
    autotune(q, k, v, **kwargs)


def test_default_candidates_start_with_the_current_default():
  for dim, bucket in ((64, 64), (80, 128)):
    for name in tiling.KERNELS:
      cands = default_candidates(dim, name)
      assert cands[0] == KernelBlocks(*tiling.gpu_defaults(name, bucket))
      assert len(set(cands)) == len(cands) > 1
  assert default_candidates(64, "dq", backend="tpu") == [KernelBlocks()]
  # 4-byte inputs: the float32 default, then the float32 candidates (the 16-bit ones would overflow shared memory)
  for dim, bucket in ((64, 64), (96, 128)):
    for name in tiling.KERNELS:
      cands = default_candidates(dim, name, itemsize=4)
      assert cands[0] == KernelBlocks(*tiling.GPU_DEFAULTS_FLOAT32[bucket][name])
      assert cands[1:] == [KernelBlocks(*c) for c in GPU_CANDIDATES_FLOAT32[bucket][name]]


def test_tpu_tunes_the_split_backward_only():
  assert _kernels_to_tune("auto", "tpu") == ("forward", "dkdv", "dq")
  assert _kernels_to_tune("auto", "gpu") == ("forward", "dkdv", "dq", "fused")
  with pytest.raises(ValueError, match="atomic"):
    _kernels_to_tune("fused", "tpu")
