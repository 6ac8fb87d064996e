"""Tests for the benchmark-only `experiments/bench/_relaxed_atomics.py`: inside the block the fused attention
backward's dq atomics lower with relaxed order, outside (before and after) with jax's acquire-release, and no
lowering is reused across the block's edges (jax caches lowerings by jaxpr)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

from _relaxed_atomics import relaxed_atomics  # noqa: E402
from pallas_kernels import triton_inspect  # noqa: E402
from pallas_kernels.attention import BlockSizes, flash_attention  # noqa: E402


def test_atomics_are_relaxed_inside_the_block_only():
  q = jax.ShapeDtypeStruct((1, 128, 2, 32), jnp.bfloat16)
  loss = lambda q, k, v: flash_attention(q, k, v, impl="pallas", _backend="gpu",
                                         block_sizes=BlockSizes(backward="fused")).astype(jnp.float32).sum()
  grad = jax.grad(loss, argnums=(0, 1, 2))
  before = triton_inspect.triton_modules(grad, (q, q, q))
  with relaxed_atomics() as lowered:
    inside = triton_inspect.triton_modules(grad, (q, q, q))
  after = triton_inspect.triton_modules(grad, (q, q, q))
  assert len(before) == len(inside) == len(after) == 2  # forward, fused backward: each lowered anew
  assert lowered  # the fused kernel's atomic adds went through the relaxed helper
  for modules, order in ((before, "acq_rel"), (inside, "relaxed"), (after, "acq_rel")):
    forward, backward = modules
    assert "atomic_rmw" in backward and "atomic_rmw" not in forward
    assert all(f"atomic_rmw fadd, {order}" in line for line in backward.splitlines() if "atomic_rmw" in line)
