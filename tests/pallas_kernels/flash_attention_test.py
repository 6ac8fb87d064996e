"""Tests for the Pallas flash-attention kernel run by the Pallas interpreter (impl="pallas_interpret"):
values and q/k/v gradients (Pallas backward kernels) against `attention_reference`, with ragged lengths,
grouped KV, causal / sliding-window masking, score/mask hooks and fully masked rows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention_cases import (HOOK_CASES, SHAPE_CASES, alibi, assert_matches_reference, attention_inputs as _inputs,
                             attention_value_and_grads)
from pallas_kernels.attention import BlockSizes, KernelBlocks, attention_reference, flash_attention
from pallas_kernels.attention.xla_attention import xla_attention


def _compare(q, k, v, ct, *, rtol, atol, block_q=16, block_k=16, block_sizes=None, **kw):
  """Asserts kernel output and dq, dk, dv equal the reference's; returns the kernel output."""
  kernel = functools.partial(flash_attention, impl="pallas_interpret", block_q=block_q, block_k=block_k,
                             block_sizes=block_sizes)
  return assert_matches_reference(kernel, q, k, v, ct, rtol=rtol, atol=atol, **kw)


@pytest.mark.parametrize("q_len,kv_len,heads,kv_heads,kw", SHAPE_CASES.values(), ids=SHAPE_CASES.keys())
def test_kernel_matches_reference_f32(q_len, kv_len, heads, kv_heads, kw):
  q, k, v, ct = _inputs(q_len + kv_len + heads, 1, q_len, kv_len, heads, kv_heads, 8)
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("kw", HOOK_CASES.values(), ids=HOOK_CASES.keys())
def test_hooks_match_reference(kw):
  q, k, v, ct = _inputs(7, 1, 30, 30, 4, 2, 8)
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, **kw)


@pytest.mark.parametrize("block_q,block_k,q_len,kv_len,window", [
    (8, 16, 33, 19, 4),
    (16, 8, 11, 40, 13),
    (8, 8, 40, 40, None),
])
def test_unequal_blocks_and_lengths(block_q, block_k, q_len, kv_len, window):
  q, k, v, ct = _inputs(block_q * 100 + q_len, 2, q_len, kv_len, 2, 1, 8)
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, block_q=block_q, block_k=block_k, causal=True,
           sliding_window=window)


def test_fully_masked_rows_give_zeros_and_finite_grads():
  # q_len > kv_len with causal: the first 14 rows see no key; the mask_mod also blanks row 20 entirely.
  q, k, v, ct = _inputs(11, 1, 24, 10, 2, 1, 8)
  blank = lambda q_idx, kv_idx, head: q_idx != 6
  out = _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, causal=True, mask_mod=blank)
  out = np.asarray(out)
  np.testing.assert_array_equal(out[:, :14], 0.0)
  np.testing.assert_array_equal(out[:, 20], 0.0)
  assert np.abs(out[:, 14:20]).min() > 0


@pytest.mark.parametrize("kw", [dict(causal=True), dict(causal=False, sliding_window=7),
                                dict(causal=True, score_mod=alibi)], ids=["causal", "window", "causal-alibi"])
def test_per_kernel_block_sizes(kw):
  """Different blocks for the forward, dk/dv and dq kernels (the padded lengths follow the largest)."""
  q, k, v, ct = _inputs(21, 1, 29, 41, 4, 2, 8)
  sizes = BlockSizes(forward=KernelBlocks(16, 8), dkdv=KernelBlocks(8, 16, num_warps=4), dq=KernelBlocks(block_k=8))
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, block_q=16, block_k=16, block_sizes=sizes, **kw)


@pytest.mark.parametrize("kw", [dict(causal=True), dict(causal=False, sliding_window=7, score_mod=alibi)],
                         ids=["causal", "window-alibi"])
def test_head_major_layout_matches_reference(monkeypatch, kw):
  """The TPU variant's head-major (B, H, S, D) kernel layout, run by the interpreter (which otherwise runs the
  GPU variant's (B, S, H, D) layout): ragged lengths, GQA."""
  from pallas_kernels.attention import layout
  monkeypatch.setattr(layout, "head_major", lambda t: True)
  q, k, v, ct = _inputs(22, 2, 27, 35, 4, 2, 8)
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, block_q=8, block_k=16, **kw)


def test_blocks_that_are_not_powers_of_two_share_one_padding():
  """Interpreter / TPU blocks need only be multiples of 8: the common padding is a multiple of all of them
  (24 and the default 40-row block: 120 rows)."""
  q, k, v, ct = _inputs(23, 1, 40, 40, 2, 1, 8)
  sizes = BlockSizes(forward=KernelBlocks(24, 16), dq=KernelBlocks(block_k=24))
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, block_q=None, block_k=None, block_sizes=sizes, causal=True)


def test_bf16_close_to_reference():
  q, k, v, ct = _inputs(12, 1, 37, 37, 4, 2, 16, jnp.bfloat16)
  kernel = functools.partial(flash_attention, impl="pallas_interpret", block_q=16, block_k=16, sliding_window=20)
  got = attention_value_and_grads(kernel, q, k, v, ct)
  f32 = lambda x: x.astype(jnp.float32)
  want = attention_value_and_grads(functools.partial(attention_reference, sliding_window=20), f32(q), f32(k), f32(v), ct)
  for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
    assert g.dtype == jnp.bfloat16, name
    g, w = np.asarray(g, np.float32), np.asarray(w)
    np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-2 * np.abs(w).max(), err_msg=name)


def test_default_blocks_and_head_dim_not_power_of_two():
  q, k, v, ct = _inputs(13, 2, 13, 13, 3, 1, 12)
  _compare(q, k, v, ct, rtol=1e-5, atol=1e-5, block_q=None, block_k=None, causal=True)


def test_auto_on_cpu_is_the_xla_path():
  q, k, v, _ = _inputs(14, 1, 9, 9, 2, 1, 8)
  got = flash_attention(q, k, v, impl="auto", sliding_window=3)
  want = xla_attention(q, k, v, sliding_window=3)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("backend,block,match", [
    ("gpu", 24, "power of two"),
    ("gpu", 8, "power of two"),
    ("tpu", 12, "multiple of 8"),
    ("interpret", 0, "positive int"),
])
def test_bad_block_sizes_raise(backend, block, match):
  q = k = v = jnp.zeros((1, 32, 2, 16), jnp.float32)
  impl = "pallas_interpret" if backend == "interpret" else "pallas"
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda q, k, v: flash_attention(q, k, v, impl=impl, block_q=block, _backend=backend), q, k, v)


@pytest.mark.parametrize("sizes,match", [
    (BlockSizes(dq=KernelBlocks(num_warps=3)), "num_warps"),
    (BlockSizes(forward=KernelBlocks(num_stages=0)), "num_stages"),
    (BlockSizes(dkdv=KernelBlocks(block_k=24)), "power of two"),
    ({"forward": (64, 64)}, "BlockSizes"),
])
def test_bad_kernel_block_sizes_raise(sizes, match):
  q = k = v = jnp.zeros((1, 32, 2, 16), jnp.float32)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda q, k, v: flash_attention(q, k, v, impl="pallas", block_sizes=sizes, _backend="gpu"),
                   q, k, v)


@pytest.mark.parametrize("q_len,kv_len,block_q,block_k,causal,window", [
    (37, 37, 16, 16, True, None),
    (20, 45, 8, 16, True, 11),
    (45, 20, 16, 8, True, 3),
    (33, 33, 8, 8, False, 9),
    (64, 64, 8, 16, True, 40),
    (48, 96, 16, 8, False, 30),
    (64, 32, 8, 8, False, None),
])
def test_block_ranges_are_exact(q_len, kv_len, block_q, block_k, causal, window):
  """The loop ranges cover exactly the blocks holding a visible (q, kv) pair, so skipping loses nothing, and
  the unmasked sub-ranges exactly the tiles that are entirely visible and hold no padding."""
  from pallas_kernels.attention import _common, block_math, tiling

  t = tiling.make_tilings("interpret", q_len=q_len, kv_len=kv_len, head_dim=8, groups=1, block_q=block_q,
                          block_k=block_k).forward
  spec = _common.AttentionSpec(causal=causal, sliding_window=window, softcap=None, scale=1.0, score_mod=None,
                               mask_mod=None)
  rows = np.arange(q_len)[:, None] + kv_len - q_len
  cols = np.arange(kv_len)[None, :]
  visible = np.ones((q_len, kv_len), bool)
  if causal:
    visible &= cols <= rows
  if window is not None:
    visible &= rows - cols < window

  padded = np.zeros((t.q_pad, t.kv_pad), bool)
  padded[:q_len, :kv_len] = visible

  def blocks_seen(sel):
    return [int(i) for i in np.flatnonzero(sel)]

  def tile(i, j):
    return padded[i * block_q:(i + 1) * block_q, j * block_k:(j + 1) * block_k]

  for i in range(t.num_q_blocks):
    want = blocks_seen([tile(i, j).any() for j in range(t.num_kv_blocks)])
    lo, hi = block_math.kv_block_range(jnp.int32(i), spec, t)
    assert list(range(int(lo), int(hi))) == want, (i, int(lo), int(hi), want)
    want_full = blocks_seen([tile(i, j).all() for j in range(t.num_kv_blocks)])
    flo, fhi = block_math.unmasked_kv_block_range(jnp.int32(i), lo, hi, spec, t)
    assert list(range(int(flo), int(fhi))) == want_full, (i, int(flo), int(fhi), want_full)
  for j in range(t.num_kv_blocks):
    want = blocks_seen([tile(i, j).any() for i in range(t.num_q_blocks)])
    lo, hi = block_math.q_block_range(jnp.int32(j), spec, t)
    assert list(range(int(lo), int(hi))) == want, (j, int(lo), int(hi), want)
    want_full = blocks_seen([tile(i, j).all() for i in range(t.num_q_blocks)])
    flo, fhi = block_math.unmasked_q_block_range(jnp.int32(j), lo, hi, spec, t)
    assert list(range(int(flo), int(fhi))) == want_full, (j, int(flo), int(fhi), want_full)


def _every_kernel_tiling(**kw):
  """name -> Tiling of all four kernels: the split backward's call and the fused backward's (default blocks)."""
  from pallas_kernels.attention import tiling
  split = tiling.make_tilings("gpu", **kw)
  fused = tiling.make_tilings("gpu", block_sizes=BlockSizes(backward="fused"), **kw)
  return {"forward": split.forward, "dkdv": split.dkdv, "dq": split.dq, "fused": fused.fused}


@pytest.mark.parametrize("head_dim,bucket", [(80, 128), (48, 64), (200, None)])
def test_gpu_defaults_per_kernel_head_dim_and_short_sequences(head_dim, bucket):
  from pallas_kernels.attention import tiling
  long = _every_kernel_tiling(q_len=4096, kv_len=4096, head_dim=head_dim, groups=1)
  short = _every_kernel_tiling(q_len=20, kv_len=4000, head_dim=head_dim, groups=1)
  assert set(long) == set(tiling.KERNELS)
  for name in tiling.KERNELS:
    want = tiling.GPU_DEFAULTS[bucket][name]
    t = long[name]
    assert (t.block_q, t.block_k, t.num_warps, t.num_stages) == want
    s = short[name]
    assert (s.block_q, s.block_k) == (min(want[0], 32), want[1])  # 20 queries: one block of 32 at most
    assert s.q_pad % s.block_q == 0 and s.kv_pad % s.block_k == 0 and s.kv_pad < 4000 + 128
  assert long["forward"].head_dim_pad == max(16, 1 << (head_dim - 1).bit_length())


@pytest.mark.parametrize("capability,table", [(None, "GPU_DEFAULTS"), ("9.0", "GPU_DEFAULTS"),
                                              ("10.0", "GPU_DEFAULTS"), ("8.0", "GPU_DEFAULTS_PRE_HOPPER"),
                                              ("gfx90a", "GPU_DEFAULTS_PRE_HOPPER")])
def test_gpu_defaults_follow_the_compute_capability(monkeypatch, capability, table):
  from pallas_kernels.attention import tiling
  monkeypatch.setattr(tiling, "gpu_compute_capability", lambda: capability)
  t = _every_kernel_tiling(q_len=4096, kv_len=4096, head_dim=128, groups=1)
  for name in tiling.KERNELS:
    k = t[name]
    assert (k.block_q, k.block_k, k.num_warps, k.num_stages) == getattr(tiling, table)[128][name]


@pytest.mark.parametrize("capability", [None, "9.0", "8.0"])
def test_gpu_defaults_for_4_byte_inputs_take_the_float32_table(monkeypatch, capability):
  """Any GPU: float32 tiles take twice the shared memory, so 4-byte inputs get the smaller float32 blocks."""
  from pallas_kernels.attention import tiling
  monkeypatch.setattr(tiling, "gpu_compute_capability", lambda: capability)
  for head_dim, bucket in ((96, 128), (64, 64)):
    t = _every_kernel_tiling(q_len=4096, kv_len=4096, head_dim=head_dim, groups=1, itemsize=4)
    for name in tiling.KERNELS:
      k = t[name]
      assert (k.block_q, k.block_k, k.num_warps, k.num_stages) == tiling.GPU_DEFAULTS_FLOAT32[bucket][name]
  # no tile of the float32 table is larger than the same kernel's 16-bit Hopper one
  for bucket, kernels in tiling.GPU_DEFAULTS_FLOAT32.items():
    for name, (bq, bk, _, _) in kernels.items():
      hopper = tiling.GPU_DEFAULTS[bucket][name]
      assert bq <= hopper[0] and bk <= hopper[1], (bucket, name)


@pytest.mark.parametrize("dtype,itemsize", [(jnp.float32, 4), (jnp.bfloat16, 2)])
def test_flash_attention_tiles_by_the_inputs_itemsize(monkeypatch, dtype, itemsize):
  from pallas_kernels.attention import tiling
  seen = []
  real = tiling.make_tilings
  monkeypatch.setattr(tiling, "make_tilings", lambda *a, **kw: seen.append(kw["itemsize"]) or real(*a, **kw))
  q = jax.ShapeDtypeStruct((1, 256, 2, 96), dtype)
  jax.eval_shape(functools.partial(flash_attention, impl="pallas", _backend="gpu", causal=True), q, q, q)
  assert seen == [itemsize]
