"""impl="mosaic" attention (Hopper kernels in Pallas Mosaic GPU) on a CPU host.

jax's GPU interpreter cannot run these kernels yet (no rules for layout casts, transposed wgmma operands or
accumulators in registers), so on CPU the kernels are checked as far as can be without a GPU:
- the kernels' own code runs on a simulator of the Mosaic GPU primitives (tests/mosaic_simulator.py: one thread per
  warpgroup, mbarrier phase semantics with deadlock and parity-alias detection, wgmma as float32 matmuls of the
  16-bit operands), and their output and dq, dk, dv match the float32 reference on fresh random inputs with every
  option, hooks, grouped KV, ragged lengths and each ring of slots wrapping around;
- they lower through Mosaic GPU for "cuda" (layouts, wgmma shapes, TMA slices, barriers are all checked by that
  lowering) for the forward and the backward, with every option and hook, grouped KV, ragged lengths, head_dim 64 /
  80 / 128, float16 and bfloat16, and non-default blocks;
- the block schedule they share is right: for random problems, every visible (row, key) pair of a warpgroup's rows
  lies in the union range its program streams, and every tile the kernels run without mask arithmetic is entirely
  visible;
- what the impl refuses, it refuses with one clear line.
On a GPU, `gpu_kernels_test.py::test_flash_attention_mosaic` checks the compiled kernels against the reference.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from attention_cases import alibi, attention_inputs
from pallas_kernels.attention import BlockSizes, MosaicBlocks, _common, block_math, flash_attention
from pallas_kernels.attention import mosaic_blocks as mb
from pallas_kernels.attention import mosaic_common as mc


def _documents(q_idx, kv_idx, head):
  return lax.div(q_idx, 37) == lax.div(kv_idx, 37)


_CONFIGS = {
    "causal-bf16-d128-gqa": dict(shape=(2, 512, 512, 4, 2, 128), dtype=jnp.bfloat16, kw=dict(causal=True)),
    "noncausal-f16-d64": dict(shape=(1, 256, 256, 2, 2, 64), dtype=jnp.float16, kw=dict(causal=False)),
    "hooks-f16-ragged-d80": dict(shape=(1, 300, 300, 4, 1, 80), dtype=jnp.float16,
                                 kw=dict(causal=False, sliding_window=33, softcap=30.0, score_mod=alibi,
                                         mask_mod=_documents)),
    "decode-window-bf16": dict(shape=(1, 100, 333, 2, 1, 64), dtype=jnp.bfloat16,
                               kw=dict(causal=True, sliding_window=70, scale=0.2)),
}


def _export(config, backward, blocks=None):
  batch, q_len, kv_len, heads, kv_heads, dim = config["shape"]
  q = jax.ShapeDtypeStruct((batch, q_len, heads, dim), config["dtype"])
  kv = jax.ShapeDtypeStruct((batch, kv_len, kv_heads, dim), config["dtype"])

  def attend(q, k, v):
    return flash_attention(q, k, v, impl="mosaic", _backend="cuda", block_sizes=blocks, **config["kw"])

  fn = attend
  if backward:
    fn = jax.grad(lambda q, k, v: attend(q, k, v).astype(jnp.float32).sum(), argnums=(0, 1, 2))
  return jax.export.export(jax.jit(fn), platforms=["cuda"])(q, kv, kv)


@pytest.mark.parametrize("config", sorted(_CONFIGS))
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_mosaic_kernels_lower_for_cuda(config, backward):
  exported = _export(_CONFIGS[config], backward)
  calls = re.findall(r"custom_call @mosaic_gpu_v2", exported.mlir_module())
  assert len(calls) == (3 if backward else 1)  # forward; forward, dq, dk/dv
  batch, q_len, _, heads, _, dim = _CONFIGS[config]["shape"]
  if backward:
    assert [tuple(a.shape) for a in exported.out_avals][0] == (batch, q_len, heads, dim)


@pytest.mark.parametrize("blocks", [
    MosaicBlocks(forward_q=128, forward_kv=64, dq_q=64, dq_kv=128, dkdv_kv=128, dkdv_q=64, stages=2, pingpong=False),
    MosaicBlocks(forward_kv=64, stages=3),
], ids=["big-blocks", "three-stages"])
def test_non_default_blocks_lower(blocks):
  exported = _export(_CONFIGS["causal-bf16-d128-gqa"], True, blocks)
  assert len(re.findall(r"custom_call @mosaic_gpu_v2", exported.mlir_module())) == 3


@pytest.mark.parametrize("blocks, kernel", [
    (MosaicBlocks(forward_kv=64, dq_kv=128, stages=3), "dq"),
    (MosaicBlocks(forward_q=128, forward_kv=256, stages=3), "forward"),
    (MosaicBlocks(stages=3), "forward"),  # by 112 bytes
    (MosaicBlocks(forward_kv=64, dkdv_kv=128, dkdv_q=128, stages=3), "dkdv"),
])
def test_the_shared_memory_count_is_mosaics_own(monkeypatch, blocks, kernel):
  """With the early check off, Mosaic GPU's lowering refuses the same blocks and counts the same bytes."""
  counted = mb.shared_memory_bytes(blocks, 128, 2)[kernel]
  assert counted > mb.SHARED_MEMORY_BYTES
  monkeypatch.setattr(mb, "check_shared_memory", lambda *args: None)
  with pytest.raises(ValueError, match=f"exceeds available shared memory: smem_bytes={counted} "):
    _export(_CONFIGS["causal-bf16-d128-gqa"], True, blocks)


def test_blocks_that_overflow_shared_memory_are_refused_before_lowering():
  with pytest.raises(ValueError, match=r"more shared memory than a Hopper block has \(227 KiB\) at head_dim 128: "
                     r"dq 257 KiB; use fewer stages or smaller blocks"):
    _export(_CONFIGS["causal-bf16-d128-gqa"], True, MosaicBlocks(forward_kv=64, dq_kv=128, stages=3))


def _visible(spec, q_len, kv_len):
  """Bool (q_len, kv_len): which keys each real query row sees, from the API's own keep-mask."""
  q_idx = np.arange(q_len)[:, None] + (kv_len - q_len)
  kv_idx = np.arange(kv_len)[None, :]
  keep = _common.keep_mask(jnp.asarray(q_idx), jnp.asarray(kv_idx), jnp.int32(0), spec)
  return np.broadcast_to(np.asarray(True if keep is None else keep), (q_len, kv_len))


def _check_schedule(visible, t, range_fn, unmasked_fn, spec, *, own_is_q):
  """For each program (two warpgroups' own blocks), the union range of the other side's blocks holds every visible
  pair of its own rows, and the unmasked sub-range of each warpgroup's block is entirely visible."""
  own_block, other_block = (t.block_q, t.block_k) if own_is_q else (t.block_k, t.block_q)
  own_pad, own_len = (t.q_pad, t.q_len) if own_is_q else (t.kv_pad, t.kv_len)
  other_len = t.kv_len if own_is_q else t.q_len
  pairs = visible if own_is_q else visible.T  # (own rows, other rows)
  for tile in range(own_pad // (mb.COMPUTE_WARPGROUPS * own_block)):
    lo, hi = (int(x) for x in mc.union_range(tile * mb.COMPUTE_WARPGROUPS, spec, t, range_fn))
    for wg in range(mb.COMPUTE_WARPGROUPS):
      block = tile * mb.COMPUTE_WARPGROUPS + wg
      rows = slice(block * own_block, min((block + 1) * own_block, own_len))
      seen = np.nonzero(pairs[rows].any(axis=0))[0]
      assert ((seen >= lo * other_block) & (seen < hi * other_block)).all(), (tile, wg, lo, hi)
      flo, fhi = (int(x) for x in unmasked_fn(block, jnp.int32(lo), jnp.int32(hi), spec, t))
      assert lo <= flo <= fhi <= hi
      for other in range(flo, fhi):
        cols = slice(other * other_block, (other + 1) * other_block)
        assert (block + 1) * own_block <= own_len and (other + 1) * other_block <= other_len
        assert pairs[rows, cols].all(), (tile, wg, other)


@pytest.mark.parametrize("seed", range(12))
def test_the_block_schedule_covers_every_visible_pair(seed):
  rng = np.random.default_rng(seed)
  q_len = int(rng.integers(1, 700))
  kv_len = q_len if rng.random() < 0.5 else int(rng.integers(q_len, 900))
  causal = bool(rng.random() < 0.7)
  window = int(rng.integers(1, 300)) if rng.random() < 0.5 else None
  spec = _common.make_spec(jnp.zeros((1, 1, 1, 64)), causal=causal, sliding_window=window, softcap=None, scale=None,
                           score_mod=None, mask_mod=None)
  blocks = MosaicBlocks(forward_q=int(rng.choice([64, 128])), forward_kv=int(rng.choice([64, 128, 256])),
                        dq_kv=int(rng.choice([64, 128])), dkdv_kv=int(rng.choice([64, 128])),
                        dkdv_q=int(rng.choice([64, 128])))
  make = lambda bq, bk: mb.make_tiling(block_q=bq, block_k=bk, q_len=q_len, kv_len=kv_len, head_dim=64, groups=1,
                                       blocks=blocks)
  visible = _visible(spec, q_len, kv_len)
  for t in (make(blocks.forward_q, blocks.forward_kv), make(blocks.dq_q, blocks.dq_kv)):
    _check_schedule(visible, t, block_math.kv_block_range, block_math.unmasked_kv_block_range, spec, own_is_q=True)
  _check_schedule(visible, make(blocks.dkdv_q, blocks.dkdv_kv), block_math.q_block_range,
                  block_math.unmasked_q_block_range, spec, own_is_q=False)


def test_padding_is_a_multiple_of_every_kernels_blocks():
  blocks = MosaicBlocks(forward_q=128, forward_kv=256, dq_q=64, dq_kv=64, dkdv_kv=128, dkdv_q=64)
  t = mb.make_tiling(block_q=64, block_k=64, q_len=300, kv_len=300, head_dim=80, groups=1, blocks=blocks)
  assert (t.q_pad, t.kv_pad, t.head_dim_pad) == (512, 512, 128)
  assert t.q_pad % (2 * blocks.forward_q) == 0 and t.kv_pad % (2 * blocks.dkdv_kv) == 0


@pytest.mark.parametrize("dtype, dim, message", [
    (jnp.float32, 64, "impl='mosaic' takes float16 or bfloat16 inputs .* q is float32"),
    (jnp.bfloat16, 256, "impl='mosaic' takes head_dim <= 128; got 256"),
])
def test_what_mosaic_cannot_take_is_refused(dtype, dim, message):
  q, k, v, _ = attention_inputs(0, 1, 128, 128, 2, 2, dim, dtype)
  with pytest.raises(ValueError, match=message):
    flash_attention(q, k, v, impl="mosaic", _backend="cuda")


@pytest.mark.parametrize("kw, message", [
    (dict(block_q=64), "block_sizes=MosaicBlocks"),
    (dict(block_sizes=BlockSizes()), "takes block_sizes=MosaicBlocks.*got BlockSizes"),
    (dict(block_sizes=MosaicBlocks(forward_q=32)), r"forward_q must be 64 or 128 \(a warpgroup.s wgmma rows\); got 32"),
    (dict(block_sizes=MosaicBlocks(dq_kv=96)), "dq_kv must be 64, 128 or 256; got 96"),
    (dict(block_sizes=MosaicBlocks(stages=1)), "stages must be 2, 3 or 4; got 1"),
    (dict(block_sizes=MosaicBlocks(pingpong=1)), "pingpong must be True or False; got 1"),
])
def test_bad_mosaic_blocks_are_refused(kw, message):
  q, k, v, _ = attention_inputs(0, 1, 128, 128, 2, 2, 64, jnp.bfloat16)
  with pytest.raises(ValueError, match=message):
    flash_attention(q, k, v, impl="mosaic", _backend="cuda", **kw)


def test_mosaic_needs_a_cuda_gpu():
  q, k, v, _ = attention_inputs(0, 1, 8, 8, 2, 2, 64, jnp.bfloat16)
  with pytest.raises(ValueError, match="impl 'mosaic' needs a CUDA GPU; this backend is cpu"):
    flash_attention(q, k, v, impl="mosaic")


@pytest.mark.parametrize("capability", ["8.0", "10.0"])
def test_mosaic_refuses_gpus_other_than_hopper(monkeypatch, capability):
  from pallas_kernels.attention import tiling
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(tiling, "gpu_compute_capability", lambda: capability)
  q, k, v, _ = attention_inputs(0, 1, 128, 128, 2, 2, 64, jnp.bfloat16)
  with pytest.raises(ValueError, match=rf"needs a Hopper \(sm_90\) GPU .* this GPU is sm_{capability}: use "
                     "impl='pallas'"):
    flash_attention(q, k, v, impl="mosaic")


# The kernels' own code run on the CPU simulator of the Mosaic GPU primitives (tests/mosaic_simulator.py): forward
# output and dq, dk, dv against the float32 reference. The shapes make every ring of slots wrap around.
_SIMULATED = {
    "causal-gqa-bf16": dict(shape=(1, 300, 300, 4, 2, 64), dtype=jnp.bfloat16, kw=dict(causal=True), blocks=None),
    "hooks-window-softcap-f16-d80": dict(
        shape=(1, 150, 150, 2, 1, 80), dtype=jnp.float16, blocks=None,
        kw=dict(causal=False, sliding_window=90, softcap=5.0, score_mod=alibi, mask_mod=_documents)),
    "decode-window-3-stages-bf16": dict(
        shape=(2, 70, 333, 2, 1, 64), dtype=jnp.bfloat16, kw=dict(causal=True, sliding_window=200, scale=0.3),
        blocks=MosaicBlocks(forward_kv=64, dq_kv=64, dkdv_kv=64, dkdv_q=64, stages=3, pingpong=False)),
}


def _rel_err(got, want):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert np.isfinite(got).all()
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("case", sorted(_SIMULATED))
def test_the_kernels_match_the_reference_on_the_simulator(monkeypatch, case):
  from mosaic_simulator import simulated
  from pallas_kernels.attention import attention_reference, mosaic_attention

  config = _SIMULATED[case]
  batch, q_len, kv_len, heads, kv_heads, dim = config["shape"]
  q, _, _, dout = attention_inputs(7, batch, q_len, q_len, heads, kv_heads, dim, config["dtype"])
  _, k, v, _ = attention_inputs(8, batch, kv_len, kv_len, heads, kv_heads, dim, config["dtype"])
  spec = _common.make_spec(q, **{"sliding_window": None, "softcap": None, "scale": None, "score_mod": None,
                                 "mask_mod": None, **config["kw"]})
  plan = mosaic_attention._plan(q, k, config["blocks"] or MosaicBlocks())
  with simulated(monkeypatch):
    out, residuals = mosaic_attention._forward(q, k, v, spec, plan)
    grads = mosaic_attention._backward(spec, plan, residuals, dout)
  up = [x.astype(jnp.float32) for x in (q, k, v, dout)]
  with jax.default_matmul_precision("highest"):
    want, vjp = jax.vjp(lambda q, k, v: attention_reference(q, k, v, **config["kw"]), *up[:3])
    want_grads = vjp(up[3])
  assert out.shape == q.shape and out.dtype == q.dtype
  errors = {name: _rel_err(got, ref) for name, got, ref in zip(("out", "dq", "dk", "dv"), (out, *grads),
                                                                 (want, *want_grads))}
  assert max(errors.values()) < 2e-2, errors


def test_the_simulator_keeps_mbarrier_phases(monkeypatch):
  import mosaic_simulator as sim
  monkeypatch.setattr(sim, "DEADLOCK_S", 0.2)
  program = sim._Program()
  barrier = sim.Barrier(program, num_arrivals=2, name="free")
  barrier.arrive()
  with pytest.raises(sim.SimulationError, match="deadlock: warpgroup 0 waited 0.2 s on phase 0 of free "
                     r"\(0 completed, 1 arrivals\)"):
    barrier.wait(0)
  barrier.arrive()
  barrier.wait(1)  # phase 0 complete: warpgroup 1's first wait passes
  barrier.arrive(), barrier.arrive(), barrier.arrive(), barrier.arrive()  # phases 1 and 2
  with pytest.raises(sim.SimulationError, match="waits on phase 1 of free, which completed 3 phases: the parity "
                     "wait would alias"):
    barrier.wait(1)
