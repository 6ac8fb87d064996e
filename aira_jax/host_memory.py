"""Keeps freed host memory inside the process, so XLA:CPU steps stop page-faulting their buffers every time.

XLA:CPU allocates the temporary buffer of every execution with malloc and frees it when the execution ends;
for a training step it is large (378 MB for `experiments/bench/train_step.py`'s proxy64 step). glibc serves a
block that large with a fresh `mmap` and gives it back with `munmap`, so each step touches hundreds of MB of
new pages: 92,000 minor page faults per proxy64 step, about a third of its time on the 2-core machine the
benchmarks ran on (RESULTS.md). Three glibc malloc settings make freed memory reusable instead:

- one malloc arena, so blocks freed by XLA's worker threads return to the main heap (a thread's own arena is
  at most 64 MB, and larger blocks are mmapped whatever the settings);
- no mmap for large blocks (`M_MMAP_MAX` = 0): they come from the main heap;
- no trimming of the heap's top (`M_TRIM_THRESHOLD` at its maximum).

Afterwards steady-state steps fault almost no pages. The cost: the process keeps its peak heap (resident memory
does not shrink after a large step) and all threads share one arena's lock, which costs nothing measurable for
JAX's few large allocations. Linux with glibc only; elsewhere nothing changes. Call it before the first JAX
computation (JAX starts its CPU threads then); the command lines and the design sandbox's child do.
Set AIRA_JAX_KEEP_FREED_MEMORY=0 to leave malloc alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_TRIM_NEVER = 2**31 - 1  # mallopt takes an int; the largest disables trimming in practice
_ENV_SWITCH = "AIRA_JAX_KEEP_FREED_MEMORY"
_applied = False


def keep_freed_memory() -> bool:
  """Applies the malloc settings above once per process. Returns True if they are in effect."""
  global _applied
  if _applied:
    return True
  if os.environ.get(_ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
    return False
  if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  results = [libc.mallopt(option, value) for option, value in
             ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_NEVER))]
  _applied = all(result == 1 for result in results)  # mallopt returns 1 on success
  return _applied
