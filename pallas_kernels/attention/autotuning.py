"""Block-size autotuning of the Pallas flash-attention kernels for one problem on the current device.

`autotune(q, k, v, ...)` times each kernel (forward; the backward's dk/dv and dq, and with backward="auto" or
"fused" the fused backward) alone for candidate `KernelBlocks` (block sizes and, on GPU, Triton warps / pipeline
stages), checks every candidate's result against the float32 reference on the same inputs, and returns the
fastest correct candidate per kernel as a `BlockSizes` for `flash_attention(..., block_sizes=...)`, with the list
of trials; with "auto" the fused backward is chosen when it beats the best dk/dv and dq times together. The
built-in defaults (`tiling.GPU_DEFAULTS`) were measured on an H200; other GPUs and shapes may prefer other blocks.

The reference materialises (q_len, kv_len) scores per head in float32: mind the memory for long sequences.
Timings in the interpreter (interpret=True, any backend) exercise the code path only; they mean nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels.attention import _common, layout, pallas_backward, pallas_forward, tiling
from pallas_kernels.attention.reference import attention_reference
from pallas_kernels.attention.tiling import BlockSizes, KernelBlocks

BACKWARDS = ("auto", *tiling.BACKWARD_KERNELS)  # "auto", "split", "fused"

# (block_q, block_k, num_warps, num_stages) tried after the current default, per padded-head_dim bucket and
# kernel (GPU). First the candidates not measured yet, then the runners-up of the 2026-11-27 H200 sweeps
# (experiments/bench/RESULTS.md; for the head_dim 128 forward its fastest, too close to the shared-memory limit
# for a default). The forward and dq kernels hold block_q rows and loop over block_k keys; the dk/dv and fused
# kernels hold block_k keys and loop over block_q. Every candidate fits sm_90's shared memory (checked with
# experiments/bench/triton_resources.py). head_dim 128's unmeasured ones: dk/dv (64, 128, 8, 4) and
# (32, 128, 8, 3), dq (64, 32, 4, 4) and (64, 32, 8, 3), forward (64, 64, 4, 3); the fused kernel's are its two
# runners-up.
GPU_CANDIDATES = {
    64: {
        "forward": [(128, 128, 4, 3), (128, 64, 4, 4), (64, 64, 4, 3), (128, 64, 8, 3)],
        "dkdv": [(64, 64, 4, 3), (64, 128, 4, 2), (32, 64, 4, 2), (64, 128, 4, 3), (32, 128, 4, 3)],
        "dq": [(64, 64, 4, 3), (128, 64, 4, 2), (64, 128, 4, 2), (64, 32, 4, 2), (128, 64, 8, 3)],
        "fused": [(64, 128, 8, 2), (32, 64, 4, 2), (64, 64, 4, 3), (128, 64, 8, 2)],
    },
    128: {
        "forward": [(64, 64, 4, 3), (128, 128, 8, 3), (128, 64, 8, 4), (128, 128, 8, 2)],
        "dkdv": [(64, 128, 8, 4), (32, 128, 8, 3), (64, 64, 4, 2), (64, 128, 8, 2)],
        "dq": [(64, 32, 4, 4), (64, 32, 8, 3), (128, 32, 4, 3), (128, 32, 8, 3)],
        "fused": [(32, 128, 8, 2), (64, 64, 8, 3)],
    },
}
# float32 inputs (3-pass TF32 dots; `tiling.GPU_DEFAULTS_FLOAT32` first): none timed on a GPU yet; each fits
# sm_90's shared memory (checked with triton_resources.py --dtype float32).
GPU_CANDIDATES_FLOAT32 = {
    64: {
        "forward": [(64, 32, 4, 2), (128, 64, 4, 2)],
        "dkdv": [(32, 64, 4, 2), (64, 32, 4, 2)],
        "dq": [(64, 32, 4, 2), (128, 32, 4, 2)],
        "fused": [(32, 64, 4, 2)],
    },
    128: {
        "forward": [(32, 64, 4, 2), (64, 64, 4, 1)],
        "dkdv": [(16, 64, 4, 2), (32, 64, 4, 1)],
        "dq": [(32, 64, 4, 2), (64, 32, 4, 1)],
        "fused": [(16, 32, 4, 2)],
    },
}


@dataclasses.dataclass(frozen=True)
class Trial:
  """One candidate of one kernel: its median time (ms), worst relative error against the reference, and
  status "ok", "ERR <err>" (over the tolerance or not finite), "FAIL: <error>" or "skip: time budget"."""
  kernel: str
  blocks: KernelBlocks
  status: str
  ms: Optional[float] = None
  max_err: Optional[float] = None
  compile_s: Optional[float] = None


def default_candidates(head_dim: int, kernel: str, backend: str = "gpu", itemsize: int = 2) -> list[KernelBlocks]:
  """On GPU the default of `kernel` for this head_dim and input itemsize first, then `GPU_CANDIDATES` (head_dim up
  to 128), or `GPU_CANDIDATES_FLOAT32` for 4-byte inputs (the 16-bit ones would mostly overflow shared memory);
  elsewhere only the backend's default (pass candidates to tune a TPU)."""
  if tiling.canonical_backend(backend) != "gpu":
    return [KernelBlocks()]
  pad = tiling.gpu_head_dim_pad(head_dim)
  default = tiling.gpu_defaults(kernel, pad, itemsize)
  table = GPU_CANDIDATES_FLOAT32 if itemsize >= 4 else GPU_CANDIDATES
  others = table.get(tiling.head_dim_bucket(pad), {}).get(kernel, [])
  return [KernelBlocks(*c) for c in [default] + [c for c in others if c != default]]


def _median_ms(fn, args, target_s: float) -> float:
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  reps = int(min(300, max(5, target_s / max(time.perf_counter() - start, 1e-6))))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times) * 1e3)


def _rel_err(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  if not np.isfinite(got).all():
    return float("nan")
  return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


class _Problem:
  """Inputs, reference results and the backward kernels' lse / delta of one attention call."""

  def __init__(self, q, k, v, spec, backend, seed):
    self.q, self.k, self.v, self.spec, self.backend = q, k, v, spec, backend
    rng = np.random.default_rng(seed)
    self.dout = jnp.asarray(rng.standard_normal(q.shape, np.float32), q.dtype)
    up = lambda x: x.astype(jnp.float32)
    hooks = dict(causal=spec.causal, sliding_window=spec.sliding_window, softcap=spec.softcap, scale=spec.scale,
                 score_mod=spec.score_mod, mask_mod=spec.mask_mod)
    with jax.default_matmul_precision("highest"):
      out, vjp = jax.vjp(functools.partial(attention_reference, **hooks), up(q), up(k), up(v))
      # on the host once: every trial compares against it
      self.ref = {key: np.asarray(x) for key, x in zip(("out", "dq", "dk", "dv"), (out, *vjp(up(self.dout))))}
    t = self.tilings(BlockSizes()).forward
    out_l, lse = jax.jit(lambda *a: pallas_forward.forward(*a, spec, t))(*self.layout(t))
    dout_l = layout.to_kernel_layout(self.dout, t, t.q_pad)
    self.lse, self.delta = lse, pallas_backward.backward_delta(out_l, dout_l, t)

  def tilings(self, sizes: BlockSizes) -> tiling.Tilings:
    return tiling.make_tilings(self.backend, q_len=self.q.shape[1], kv_len=self.k.shape[1],
                               head_dim=self.q.shape[3], groups=self.q.shape[2] // self.k.shape[2],
                               block_sizes=sizes, causal=self.spec.causal,
                               itemsize=jnp.dtype(self.q.dtype).itemsize)

  def layout(self, t, with_dout=False):
    """q, k, v (and dout) in the kernel layout of tiling t."""
    arrays = [layout.to_kernel_layout(self.q, t, t.q_pad), layout.to_kernel_layout(self.k, t, t.kv_pad),
              layout.to_kernel_layout(self.v, t, t.kv_pad)]
    return arrays + [layout.to_kernel_layout(self.dout, t, t.q_pad)] if with_dout else arrays

  def rows(self, x, t):
    """lse or delta (B, H, rows, 1) cut or zero-padded to t.q_pad rows (padded rows are masked anyway)."""
    n = x.shape[2]
    return x[:, :, :t.q_pad] if n >= t.q_pad else jnp.pad(x, ((0, 0), (0, 0), (0, t.q_pad - n), (0, 0)))

  def kernel(self, name: str, blocks: KernelBlocks):
    """(jitted kernel, its arguments, outputs -> {result name: (B, S, H, D) array}) with candidate blocks."""
    t = getattr(self.tilings(BlockSizes.for_kernel(name, blocks)), name)
    back = lambda x, length: layout.from_kernel_layout(x, t, length)
    q_len, kv_len, spec = self.q.shape[1], self.k.shape[1], self.spec
    if name == "forward":
      return (jax.jit(lambda *a: pallas_forward.forward(*a, spec, t)), self.layout(t),
              lambda o: {"out": back(o[0], q_len)})
    args = (*self.layout(t, with_dout=True), self.rows(self.lse, t), self.rows(self.delta, t))
    if name == "dkdv":
      return (jax.jit(lambda *a: pallas_backward.dkdv(*a, spec, t)), args,
              lambda o: {"dk": back(o[0], kv_len), "dv": back(o[1], kv_len)})
    if name == "fused":  # timed with its dq buffer's zeroing and final cast, which the split kernels do not need
      return (jax.jit(lambda *a: pallas_backward.fused(*a, spec, t)), args,
              lambda o: {"dq": back(o[0], q_len), "dk": back(o[1], kv_len), "dv": back(o[2], kv_len)})
    return jax.jit(lambda *a: pallas_backward.dq(*a, spec, t)), args, lambda o: {"dq": back(o, q_len)}


def _try(problem: _Problem, name: str, blocks: KernelBlocks, tolerance: float, target_s: float) -> Trial:
  try:
    fn, args, results = problem.kernel(name, blocks)
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    outputs = jax.block_until_ready(compiled(*args))
    compile_s = time.perf_counter() - start
    errs = [_rel_err(got, problem.ref[key]) for key, got in results(outputs).items()]
    max_err = float(max(errs)) if all(np.isfinite(errs)) else float("nan")
    status = "ok" if max_err < tolerance else f"ERR {max_err:.1e}"
    return Trial(name, blocks, status, _median_ms(compiled, args, target_s), max_err, compile_s)
  except Exception as error:  # noqa: BLE001  (a candidate may not compile, e.g. out of shared memory)
    first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
    return Trial(name, blocks, f"FAIL: {type(error).__name__}: {first}")


def _kernels_to_tune(backward: str, backend: str) -> tuple[str, ...]:
  if backward not in BACKWARDS:
    raise ValueError(f"backward must be one of {', '.join(BACKWARDS)}; got {backward!r}")
  if backward == "fused" and backend == "tpu":
    raise ValueError("backward='fused' needs atomic adds, which Mosaic TPU does not have; use 'split'")
  if backward == "auto":
    backward = "split" if backend == "tpu" else "both"
  split, fused = tiling.BACKWARD_KERNELS["split"], tiling.BACKWARD_KERNELS["fused"]
  return ("forward",) + {"split": split, "fused": fused, "both": split + fused}[backward]


def _choose_backward(best: dict[str, Trial | None]) -> str | None:
  """"fused" when the fused kernel's fastest correct candidate beats the fastest dk/dv and dq together (or they
  have none), "split" when both of those have one, else None (the default)."""
  fused = best.get("fused")
  split = [best.get(name) for name in tiling.BACKWARD_KERNELS["split"]]
  split_ms = None if None in split else sum(t.ms for t in split)
  if fused is not None and (split_ms is None or fused.ms < split_ms):
    return "fused"
  return None if split_ms is None else "split"


def autotune(q, k, v, *, causal=True, sliding_window=None, softcap=None, scale=None, score_mod=None, mask_mod=None,
             candidates: dict[str, Sequence[KernelBlocks]] | None = None, backward: str = "split",
             target_s: float = 0.1, tolerance: float | None = None, budget_s: float | None = None,
             interpret: bool = False, seed: int = 0,
             on_trial: Callable[[Trial], None] | None = None) -> tuple[BlockSizes, list[Trial]]:
  """Fastest correct block sizes of each attention kernel for these inputs on this device.

  Args:
    q, k, v: example inputs, as for `flash_attention` (their shapes, dtype and values are used; the output
      cotangent is random).
    causal ... mask_mod: the attention options, as for `flash_attention`.
    candidates: {"forward" | "dkdv" | "dq" | "fused": [KernelBlocks, ...]}; kernels not named use
      `default_candidates`.
    backward: "split" (default) tunes the dk/dv and dq kernels, "fused" the fused backward kernel, "auto" both
      (split only on TPU, which has no fused kernel) and returns the faster backward. On an H200 the fused kernel
      ran slower than dk/dv and dq together (RESULTS.md, sixth session), so "split" skips it.
    target_s: seconds per timing loop (median of 5-300 calls).
    tolerance: largest accepted ||got - ref|| / ||ref|| of each result; default 2e-2 for 16-bit inputs, 2e-3
      for float32 (GPU matmuls may round operands to tf32).
    budget_s: candidates not started after this many seconds are skipped ("skip: time budget").
    interpret: run the kernels in the Pallas interpreter (checks the path; times mean nothing).
    on_trial: called with each `Trial` as it finishes (progress).

  Returns:
    (BlockSizes with each kernel's fastest "ok" candidate, or the kernel's default when none passed, and
    `backward` "fused" when the fused kernel is the faster backward (with backward="fused": whenever one passed),
    "split" when the split kernels are, None when no backward had a correct candidate; every Trial, in order).
  """
  _common.check_inputs(q, k, v)
  backend = "interpret" if interpret else jax.default_backend()
  tiling.canonical_backend(backend)  # a clear error on CPU without interpret=True
  spec = _common.make_spec(q, causal=causal, sliding_window=sliding_window, softcap=softcap, scale=scale,
                           score_mod=score_mod, mask_mod=mask_mod)
  if tolerance is None:
    tolerance = 2e-3 if jnp.dtype(q.dtype).itemsize >= 4 else 2e-2
  unknown = set(candidates or {}) - set(tiling.KERNELS)
  if unknown:
    raise ValueError(f"candidates names unknown kernels {sorted(unknown)}; choose from {', '.join(tiling.KERNELS)}")
  kernels = _kernels_to_tune(backward, tiling.canonical_backend(backend))
  problem = _Problem(q, k, v, spec, backend, seed)
  deadline = time.monotonic() + (float("inf") if budget_s is None else budget_s)
  best, trials = {}, []
  for name in kernels:
    best[name] = None
    for blocks in ((candidates or {}).get(name)
                   or default_candidates(q.shape[3], name, backend, jnp.dtype(q.dtype).itemsize)):
      trial = (Trial(name, blocks, "skip: time budget") if time.monotonic() > deadline
               else _try(problem, name, blocks, tolerance, target_s))
      trials.append(trial)
      if on_trial:
        on_trial(trial)
      if trial.status == "ok" and (best[name] is None or trial.ms < best[name].ms):
        best[name] = trial
  chosen = {name: trial.blocks for name, trial in best.items() if trial is not None}
  return BlockSizes(**chosen, backward=_choose_backward(best)), trials
