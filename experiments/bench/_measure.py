"""Measuring helpers for `kernels.py`: compile, time, and compare against the float32 reference."""

from __future__ import annotations

import time

import jax
import numpy as np


def forward_fn(fn):
  return lambda *args: fn(*args)


def forward_backward_fn(fn):
  """(*args, cotangent) -> (output, grads wrt every arg) through one vjp."""
  def run(*args_and_ct):
    *args, ct = args_and_ct
    out, pullback = jax.vjp(fn, *args)
    return out, pullback(ct)
  return run


# For code that is run, not timed (the float32 references): XLA need not autotune its GEMMs on a GPU, which takes
# most of a reference's 15-30 s compile at the attention targets. Other backends ignore the option.
UNTIMED_COMPILE_OPTIONS = {"xla_gpu_autotune_level": 0}


def compile_fn(fn, args, *, timed=True):
  """jit + AOT compile, then one call (Pallas/Triton kernels may finish compiling at first launch). timed=False:
  with `UNTIMED_COMPILE_OPTIONS` where this jaxlib knows them.

  Returns (compiled, seconds spent, result of the first call)."""
  start = time.perf_counter()
  lowered = jax.jit(fn).lower(*args)
  try:
    compiled = lowered.compile() if timed else lowered.compile(compiler_options=UNTIMED_COMPILE_OPTIONS)
  except jax.errors.JaxRuntimeError as error:
    if timed or "compile option" not in str(error):
      raise
    compiled = lowered.compile()
  result = jax.block_until_ready(compiled(*args))
  return compiled, time.perf_counter() - start, result


def time_fn(fn, arg_sets, *, warmup, min_reps, max_reps, target_s):
  """Per-call wall times in ms, rotating through `arg_sets`; the count aims at `target_s` seconds in all. Returns
  their median, p10, p90, min, max, count and the times themselves (for intervals on ratios)."""
  for i in range(warmup):
    jax.block_until_ready(fn(*arg_sets[i % len(arg_sets)]))
  start = time.perf_counter()
  jax.block_until_ready(fn(*arg_sets[0]))
  once = max(time.perf_counter() - start, 1e-6)
  reps = int(min(max_reps, max(min_reps, target_s / once)))
  times = []
  for i in range(reps):
    args = arg_sets[(i + 1) % len(arg_sets)]
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - start) * 1e3)
  t = np.asarray(times)
  return dict(median=float(np.median(t)), p10=float(np.percentile(t, 10)), p90=float(np.percentile(t, 90)),
              min=float(t.min()), max=float(t.max()), n=reps, times=[round(x, 5) for x in times])


def rel_err(got, want) -> float:
  """||got - want|| / ||want|| in float64 (NaN when got has a NaN or inf)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  if not np.isfinite(got).all():
    return float("nan")
  return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def nbytes(tree) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def ceilings() -> dict:
  """The card's measured ceilings, for "% of peak": device-to-device copy bandwidth (GB/s, bytes read plus
  written, 1 GiB of float32) and dense bf16 matmul rate (TFLOP/s, 8192^3). Random inputs, medians."""
  import jax.numpy as jnp
  key = jax.random.key(0)
  big = [jax.random.normal(k, (256 * 1024 * 1024,), jnp.float32) for k in jax.random.split(key, 2)]
  copy = jax.jit(lambda x: x * 1.0001)
  copy_ms = time_fn(copy, [(b,) for b in big], warmup=2, min_reps=10, max_reps=50, target_s=0.3)["median"]
  a = [jax.random.normal(k, (8192, 8192), jnp.bfloat16) for k in jax.random.split(key, 3)]
  matmul = jax.jit(lambda x, y: x @ y)
  mm_ms = time_fn(matmul, [(a[0], a[1]), (a[1], a[2])], warmup=2, min_reps=10, max_reps=50,
                  target_s=0.3)["median"]
  return dict(copy_gbps=2 * nbytes(big[0]) / (copy_ms * 1e-3) / 1e9, bf16_tflops=2 * 8192 ** 3 / (mm_ms * 1e-3) / 1e12)
