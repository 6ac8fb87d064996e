"""Experiment only (benchmarks, never the library): Pallas-Triton atomics lowered with relaxed memory order.

Pallas lowers every Triton atomic with acquire-release order; on sm_90 each of the fused attention backward's dq
atomic adds then carries a GPU-wide memory barrier and an L1 invalidation (RESULTS.md). `relaxed_atomics()`
swaps jax's private `_atomic_rmw` lowering helper for one that asks for relaxed order while a function is
lowered (the Triton modules are built when a jit is lowered, so lower - and compile - inside the block). A sum
of atomic adds needs no ordering: the kernel's end makes the values visible. It lets `attention_sweep.py`
measure what the ordering costs before the library grows a primitive of its own for it.
"""

from __future__ import annotations

import contextlib
import inspect


@contextlib.contextmanager
def relaxed_atomics():
  """Within the block, Pallas-Triton atomics lower as relaxed (`red.global.gpu.relaxed...`). Yields a list that
  gets one entry per atomic lowered so (empty after the block: nothing was lowered anew). jax's caches are
  cleared on entry and exit, so that neither a lowering made before nor one made inside is reused on the other
  side. Raises RuntimeError if this jax's helper no longer takes a `semantic` argument."""
  import jax
  from jax._src.pallas.triton import lowering

  original = lowering._atomic_rmw
  signature = inspect.signature(original)
  if "semantic" not in signature.parameters:
    raise RuntimeError(f"jax {__import__('jax').__version__} changed Pallas-Triton's _atomic_rmw{signature}; "
                       "update experiments/bench/_relaxed_atomics.py")

  lowered = []

  def relaxed(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.arguments["semantic"] = lowering.tt_dialect.MemSemantic.RELAXED
    lowered.append(bound.arguments["op"])
    return original(*bound.args, **bound.kwargs)

  jax.clear_caches()
  lowering._atomic_rmw = relaxed
  try:
    yield lowered
  finally:
    lowering._atomic_rmw = original
    jax.clear_caches()
