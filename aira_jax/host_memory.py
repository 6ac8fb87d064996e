"""Keeps freed host memory inside the process, so XLA:CPU training steps stop page-faulting their buffers.

XLA:CPU allocates the temporary buffer of every execution with malloc and frees it when the execution ends; a
training step's is large. glibc serves a block above its mmap threshold (at most 32 MB on 64-bit) with a fresh
`mmap` and gives it back with `munmap`, so each step faults in new pages. `keep_freed_memory()` sets three glibc
malloc options so freed memory is reused instead:

- one malloc arena (`M_ARENA_MAX` = 1): JAX's worker threads allocate from the main heap (a thread's own arena
  holds at most 64 MB, and larger blocks are mmapped whatever the other settings say);
- no mmap for large blocks (`M_MMAP_MAX` = 0);
- no trimming of the heap's top (`M_TRIM_THRESHOLD` at its maximum).

Costs: the process keeps its peak heap (about two steps' buffers; resident memory does not shrink), and all
threads share one arena lock, which slows XLA's multi-threaded compilation. So it suits a script that compiles
a training step once and runs it many times (`experiments/bench/train_step.py` applies it); the command lines,
which compile often and train small models whose buffers glibc already reuses, do not. The faults per step,
the step times with and without it and the compile slowdown are measured by `experiments/bench/train_step.py`
and `search_throughput.py` (experiments/bench/RESULTS.md, "issue 4: the per-step page faults of XLA:CPU").

Linux with glibc only; elsewhere it does nothing. Call it before the first JAX computation (JAX starts its
threads then; a thread that already has an arena keeps it). AIRA_JAX_KEEP_FREED_MEMORY=0 turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_TRIM_NEVER = 2**31 - 1  # mallopt takes an int; the largest disables trimming in practice
_ENV_SWITCH = "AIRA_JAX_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
  """Applies the malloc settings above. Returns True if they are in effect; False where the environment
  switch, the platform or glibc declines."""
  if os.environ.get(_ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
    return False
  if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:
    return False
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_NEVER))
  return all(libc.mallopt(option, value) == 1 for option, value in settings)  # mallopt returns 1 on success
