"""Tests for the fused backward kernel of the Pallas flash attention (`BlockSizes(backward="fused")`: dk and dv per kv
block, dq added across kv blocks with atomic adds), run by the Pallas interpreter: values and q/k/v gradients
against `attention_reference` on the shared shape and hook cases, ragged lengths and unequal blocks, fully masked
rows, bf16; its tiling (padding follows the kernels that run; no fused kernel on TPU)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_cases import (HOOK_CASES, SHAPE_CASES, assert_matches_reference, attention_inputs,
                             attention_value_and_grads)
from pallas_kernels.attention import BlockSizes, KernelBlocks, attention_reference, flash_attention, tiling

FUSED = BlockSizes(fused=KernelBlocks(16, 16), backward="fused")


def _compare(q, k, v, ct, sizes=FUSED, **kw):
  kernel = functools.partial(flash_attention, impl="pallas_interpret", block_sizes=sizes)
  return assert_matches_reference(kernel, q, k, v, ct, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("q_len,kv_len,heads,kv_heads,kw", SHAPE_CASES.values(), ids=SHAPE_CASES.keys())
def test_fused_backward_matches_reference(q_len, kv_len, heads, kv_heads, kw):
  q, k, v, ct = attention_inputs(q_len * kv_len + heads, 2, q_len, kv_len, heads, kv_heads, 8)
  _compare(q, k, v, ct, **kw)


@pytest.mark.parametrize("kw", HOOK_CASES.values(), ids=HOOK_CASES.keys())
def test_fused_backward_with_hooks_matches_reference(kw):
  q, k, v, ct = attention_inputs(8, 1, 30, 30, 4, 2, 8)
  _compare(q, k, v, ct, **kw)


@pytest.mark.parametrize("fused,q_len,kv_len,window", [
    (KernelBlocks(8, 16), 33, 19, 4),
    (KernelBlocks(16, 8), 11, 40, 13),
    (KernelBlocks(), 40, 40, None),  # the interpreter's default blocks
])
def test_unequal_blocks_and_lengths(fused, q_len, kv_len, window):
  """Forward and fused blocks differ; dq sums over every kv block of a row (several programs add into it)."""
  q, k, v, ct = attention_inputs(q_len * 100 + kv_len, 2, q_len, kv_len, 2, 1, 8)
  sizes = BlockSizes(forward=KernelBlocks(16, 16), fused=fused, backward="fused")
  _compare(q, k, v, ct, sizes, causal=True, sliding_window=window)


def test_fully_masked_rows_give_zeros_and_finite_grads():
  q, k, v, ct = attention_inputs(11, 1, 24, 10, 2, 1, 8)
  blank = lambda q_idx, kv_idx, head: q_idx != 6
  out = np.asarray(_compare(q, k, v, ct, causal=True, mask_mod=blank))
  np.testing.assert_array_equal(out[:, :14], 0.0)
  np.testing.assert_array_equal(out[:, 20], 0.0)


def test_bf16_close_to_reference_and_to_the_split_backward():
  q, k, v, ct = attention_inputs(12, 1, 37, 37, 4, 2, 16, jnp.bfloat16)
  run = lambda sizes: attention_value_and_grads(
      functools.partial(flash_attention, impl="pallas_interpret", block_sizes=sizes, sliding_window=20),
      q, k, v, ct)
  fused, split = run(FUSED), run(BlockSizes(dkdv=KernelBlocks(16, 16), dq=KernelBlocks(16, 16), backward="split"))
  f32 = lambda x: x.astype(jnp.float32)
  want = attention_value_and_grads(functools.partial(attention_reference, sliding_window=20),
                                   f32(q), f32(k), f32(v), ct)
  for name, g, s, w in zip(("out", "dq", "dk", "dv"), fused, split, want):
    assert g.dtype == jnp.bfloat16, name
    g, s, w = (np.asarray(x, np.float32) for x in (g, s, w))
    np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-2 * np.abs(w).max(), err_msg=name)
    # the same float32 sums in another order, rounded once to bf16: at most a few bf16 ulps apart
    np.testing.assert_allclose(g, s, rtol=2e-2, atol=2e-2 * np.abs(s).max(), err_msg=name)


def test_tilings_pad_for_the_kernels_that_run():
  """With the fused backward, the unused dk/dv and dq blocks do not enter the padding, and vice versa."""
  common = dict(q_len=40, kv_len=40, head_dim=8, groups=1)
  split_only = BlockSizes(forward=KernelBlocks(8, 8), dkdv=KernelBlocks(8, 8), dq=KernelBlocks(48, 48))
  fused = tiling.make_tilings("interpret", block_sizes=dataclasses.replace(split_only, fused=KernelBlocks(8, 16),
                                                                            backward="fused"),
                              **common)
  assert (fused.dkdv, fused.dq) == (None, None)
  assert (fused.fused.block_q, fused.fused.block_k, fused.forward.q_pad, fused.forward.kv_pad) == (8, 16, 40, 48)
  split = tiling.make_tilings("interpret", block_sizes=split_only, **common)  # backward None: split here
  assert split.fused is None and split.forward.q_pad == split.forward.kv_pad == 48
  assert (split.kernels, fused.kernels) == (("forward", "dkdv", "dq"), ("forward", "fused"))


def test_tpu_has_no_fused_backward():
  q = k = v = jnp.zeros((1, 128, 2, 128), jnp.float32)
  with pytest.raises(ValueError, match="atomic"):
    jax.eval_shape(lambda q, k, v: flash_attention(q, k, v, impl="pallas", block_sizes=FUSED, _backend="tpu"),
                   q, k, v)


def test_gpu_fused_defaults_follow_the_head_dim():
  for head_dim, bucket in ((64, 64), (128, 128)):
    t = tiling.make_tilings("gpu", q_len=4096, kv_len=4096, head_dim=head_dim, groups=2, causal=True,
                            block_sizes=BlockSizes(backward="fused")).fused
    assert (t.block_q, t.block_k, t.num_warps, t.num_stages) == tiling.GPU_DEFAULTS[bucket]["fused"]
    assert not t.reverse_blocks  # like dk/dv: causal kv blocks with the most work come first anyway


def test_backward_defaults_and_bad_values():
  """None runs the backend's default (split on TPU and in the interpreter; on GPU the per-head_dim table)."""
  common = dict(q_len=64, kv_len=64, head_dim=64, groups=1)
  assert tiling.make_tilings("interpret", **common).kernels == ("forward", "dkdv", "dq")
  want = ("forward",) + tiling.BACKWARD_KERNELS[tiling.GPU_DEFAULT_BACKWARD[64]]
  assert tiling.make_tilings("gpu", **common).kernels == want
  with pytest.raises(ValueError, match="'split', 'fused' or None"):
    tiling.make_tilings("gpu", block_sizes=BlockSizes(backward="both"), **common)
