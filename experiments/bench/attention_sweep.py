"""Block-size sweep of the Pallas flash-attention kernels on a GPU: each kernel (forward, dk/dv, dq) timed alone
for a list of candidate `KernelBlocks` (block_q, block_k, Triton warps, pipeline stages), each candidate's
result checked against the float32 reference, then the whole op (forward, forward+backward) with the fastest
candidates against the current defaults and cuDNN, in the same process.

  python experiments/bench/attention_sweep.py [--json sweep.json] [--budget-s 150] [--quick]

The JSON holds every row and, under "best", the fastest correct candidate per head_dim and kernel;
`kernels.py --attention-blocks sweep.json` runs the benchmark with them. On CPU, --quick runs tiny shapes in
the Pallas interpreter (a dry run of this script; its times mean nothing).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for pallas_kernels

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import _measure as m  # noqa: E402
from pallas_kernels.attention import (BlockSizes, KernelBlocks, _common, attention_reference,  # noqa: E402
                                     flash_attention, pallas_backward, pallas_forward, tiling)

# (block_q, block_k, num_warps, num_stages) per head_dim and kernel, tried after the current default
# (`tiling.GPU_DEFAULTS`): candidates not measured yet first, then the runner-up of the 2026-11-27 H200 sweep
# (RESULTS.md). The forward and dq kernels hold block_q rows and loop over block_k keys; the dk/dv kernel holds
# block_k keys and loops over block_q.
CANDIDATES = {
    64: {
        "forward": [(128, 128, 4, 3), (128, 64, 4, 4), (64, 64, 4, 3), (128, 64, 8, 3)],
        "dkdv": [(64, 64, 4, 3), (64, 128, 4, 2), (32, 64, 4, 2), (64, 128, 4, 3), (32, 128, 4, 3)],
        "dq": [(64, 64, 4, 3), (128, 64, 4, 2), (64, 128, 4, 2), (64, 32, 4, 2), (128, 64, 8, 3)],
    },
    128: {
        "forward": [(128, 128, 8, 2), (128, 64, 8, 4), (64, 128, 8, 3), (128, 64, 8, 3)],
        "dkdv": [(64, 128, 4, 2), (128, 128, 8, 2), (32, 128, 8, 2), (64, 64, 4, 2), (64, 128, 8, 3)],
        "dq": [(128, 32, 4, 2), (128, 64, 4, 3), (64, 32, 4, 3), (128, 32, 4, 4), (128, 32, 8, 3)],
    },
}


def candidates(dim: int, kernel: str) -> list[tuple[int, int, int, int]]:
  """The current default of `kernel` for this head_dim, then the other candidates."""
  default = tiling.GPU_DEFAULTS[64 if dim <= 64 else 128][kernel]
  return [default] + [c for c in CANDIDATES[64 if dim <= 64 else 128][kernel] if c != default]


# head_dim 128 first: its gap to cuDNN was the largest.
SHAPES = [(2, 4096, 16, 128), (2, 4096, 16, 64)]  # (batch, seq, heads, head_dim), causal, bf16
QUICK_SHAPES = [(1, 64, 2, 16)]
TOL = 2e-2  # bf16 inputs: ||got - ref|| / ||ref|| lands between 1e-3 and 1e-2


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--json", default=None, help="write rows and the best candidates here (rewritten as it goes)")
  p.add_argument("--budget-s", type=float, default=150.0, help="no candidate starts after this many seconds")
  p.add_argument("--target-s", type=float, default=0.15, help="time spent per timing loop")
  p.add_argument("--quick", action="store_true", help="tiny shapes in the Pallas interpreter (CPU dry run)")
  p.add_argument("--head-dims", default="128,64", help="which shapes, by head_dim (comma-separated)")
  p.add_argument("--max-candidates", type=int, default=None,
                 help="first N candidates of each kernel (the current default counts as the first)")
  return p.parse_args(argv)


def blocks(cand) -> KernelBlocks:
  return KernelBlocks(*cand)


class Shape:
  """Inputs, float32 reference and kernel-layout arrays of one (batch, seq, heads, head_dim) causal case."""

  def __init__(self, batch, seq, heads, dim, backend, seed=0):
    self.label, self.dim, self.backend = f"b{batch} s{seq} h{heads} d{dim} causal", dim, backend
    rng = np.random.default_rng(seed)
    f = lambda: jnp.asarray(rng.standard_normal((batch, seq, heads, dim), np.float32), jnp.bfloat16)
    self.q, self.k, self.v, self.dout = f(), f(), f(), f()
    self.spec = _common.make_spec(self.q, causal=True, sliding_window=None, softcap=None, scale=None,
                                  score_mod=None, mask_mod=None)
    up = lambda x: x.astype(jnp.float32)
    with jax.default_matmul_precision("highest"):
      out, vjp = jax.vjp(functools.partial(attention_reference, causal=True), up(self.q), up(self.k), up(self.v))
      self.ref = dict(out=np.asarray(out), **dict(zip(("dq", "dk", "dv"), map(np.asarray, vjp(up(self.dout))))))
    t = self.tilings(BlockSizes()).forward
    layout = lambda x: tiling.to_kernel_layout(x, t, t.q_pad)
    self.ql, self.kl, self.vl, self.doutl = map(layout, (self.q, self.k, self.v, self.dout))
    out_l, self.lse = jax.jit(lambda q, k, v: pallas_forward.forward(q, k, v, self.spec, t))(self.ql, self.kl, self.vl)
    self.delta = pallas_backward.backward_delta(out_l, self.doutl, t)

  def tilings(self, sizes: BlockSizes):
    b, s, h, d = self.q.shape
    return tiling.make_tilings(self.backend, q_len=s, kv_len=s, head_dim=d, groups=1, block_sizes=sizes,
                               causal=True)

  def back(self, x):
    t = self.tilings(BlockSizes()).forward
    return np.asarray(tiling.from_kernel_layout(x, t, t.q_len))


def kernel_fn(shape: Shape, kernel: str, cand):
  """(jitted fn, args, fn(outputs) -> {name: host array}) of one kernel with candidate blocks."""
  t = getattr(shape.tilings(BlockSizes(**{kernel: blocks(cand)})), kernel)
  spec = shape.spec
  if kernel == "forward":
    return (jax.jit(lambda q, k, v: pallas_forward.forward(q, k, v, spec, t)), (shape.ql, shape.kl, shape.vl),
            lambda o: {"out": shape.back(o[0])})
  args = (shape.ql, shape.kl, shape.vl, shape.doutl, shape.lse, shape.delta)
  if kernel == "dkdv":
    return (jax.jit(lambda *a: pallas_backward.dkdv(*a, spec, t)), args,
            lambda o: {"dk": shape.back(o[0]), "dv": shape.back(o[1])})
  return jax.jit(lambda *a: pallas_backward.dq(*a, spec, t)), args, lambda o: {"dq": shape.back(o)}


def sweep_kernel(shape, kernel, cands, timing, deadline, emit):
  """Times every candidate of one kernel; returns the fastest correct one (or None)."""
  best = None
  for cand in cands:
    row = dict(shape=shape.label, kernel=kernel, blocks=list(cand))
    if time.monotonic() > deadline:
      row["status"] = "skip: time budget"
    else:
      try:
        fn, args, to_host = kernel_fn(shape, kernel, cand)
        compiled, row["compile_s"], out = m.compile_fn(fn, args)
        errs = {k: m.rel_err(v, shape.ref[k]) for k, v in to_host(out).items()}
        row["max_err"] = max(errs.values()) if all(np.isfinite(list(errs.values()))) else float("nan")
        row["ms"] = m.time_fn(compiled, [args], **timing)["median"]
        row["status"] = "ok" if row["max_err"] < TOL else f"ERR {row['max_err']:.1e}"
        if row["status"] == "ok" and (best is None or row["ms"] < best[1]):
          best = (cand, row["ms"])
      except Exception as e:  # noqa: BLE001  (a candidate may not compile, e.g. shared memory; go on)
        row["status"] = f"FAIL: {type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}"
        traceback.print_exception(e, file=sys.stderr)
    print(f"  {kernel:8s} {str(cand):18s} " + (f"{row['ms']:.3f} ms  err {row['max_err']:.1e}  "
                                               if "ms" in row else "") + row["status"], flush=True)
    emit(row)
  return best


def whole_op(shape, sizes, impl, timing):
  """(forward ms, forward+backward ms) of the whole attention op (layout changes included)."""
  if impl == "cudnn":
    fn = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
  else:
    fn = lambda q, k, v: flash_attention(q, k, v, causal=True, impl=impl, block_sizes=sizes)
  args = (shape.q, shape.k, shape.v)
  fwd, _, _ = m.compile_fn(m.forward_fn(fn), args)
  fb, _, _ = m.compile_fn(m.forward_backward_fn(fn), args + (shape.dout,))
  return m.time_fn(fwd, [args], **timing)["median"], m.time_fn(fb, [args + (shape.dout,)], **timing)["median"]


def main(argv=None):
  args = parse_args(argv)
  backend = "interpret" if args.quick else jax.default_backend()
  if backend not in ("gpu", "interpret"):
    raise SystemExit(f"the sweep needs a GPU (backend here: {jax.default_backend()}); --quick for a CPU dry run")
  timing = dict(warmup=2, min_reps=5, max_reps=200, target_s=args.target_s)
  deadline = time.monotonic() + args.budget_s
  result = dict(env=dict(jax=jax.__version__, device=jax.devices()[0].device_kind), rows=[], best={}, whole=[])

  def emit(row):
    result["rows"].append(row)
    if args.json:
      Path(args.json).write_text(json.dumps(result, indent=1))

  dims = {int(d) for d in args.head_dims.split(",")}
  for batch, seq, heads, dim in (QUICK_SHAPES if args.quick else [s for s in SHAPES if s[3] in dims]):
    shape = Shape(batch, seq, heads, dim, backend)
    print(f"{shape.label}:", flush=True)
    chosen = {}
    for kernel in tiling.KERNELS:
      cands = candidates(dim, kernel)
      options = [c for c in cands if not args.quick or c[0] <= seq and c[1] <= seq][:args.max_candidates]
      best = sweep_kernel(shape, kernel, options, timing, deadline, emit)
      chosen[kernel] = list((best or (cands[0], None))[0])
    result["best"][str(dim)] = chosen
    tuned = BlockSizes(**{k: blocks(v) for k, v in chosen.items()})
    impls = [("default", BlockSizes(), "pallas"), ("tuned", tuned, "pallas")]
    if args.quick:
      impls = [(name, sizes, "pallas_interpret") for name, sizes, _ in impls]
    else:
      impls.append(("cudnn", None, "cudnn"))
    for name, sizes, impl in impls:
      try:
        f_ms, fb_ms = whole_op(shape, sizes, impl, timing)
        result["whole"].append(dict(shape=shape.label, config=name, fwd_ms=f_ms, fwdbwd_ms=fb_ms))
        print(f"  whole op {name:8s} fwd {f_ms:.3f} ms, fwd+bwd {fb_ms:.3f} ms", flush=True)
      except Exception as e:  # noqa: BLE001
        print(f"  whole op {name}: FAIL {type(e).__name__}", flush=True)
        traceback.print_exception(e, file=sys.stderr)
    emit(dict(shape=shape.label, kernel="chosen", blocks=chosen, status="best"))
  print("\nbest per head_dim (block_q, block_k, warps, stages):")
  for dim, chosen in result["best"].items():
    print(f"  d{dim}: " + ", ".join(f"{k} {tuple(v)}" for k, v in chosen.items()))
  print("\nwhole op (ms):")
  cudnn = {w["shape"]: w for w in result["whole"] if w["config"] == "cudnn"}
  for w in result["whole"]:
    ref = cudnn.get(w["shape"])
    ratio = (f"  cudnn/this {ref['fwd_ms'] / w['fwd_ms']:.2f} fwd, {ref['fwdbwd_ms'] / w['fwdbwd_ms']:.2f} f+b"
             if ref else "")
    print(f"  {w['shape']:22s} {w['config']:8s} fwd {w['fwd_ms']:.3f}  f+b {w['fwdbwd_ms']:.3f}{ratio}")
  return 0


def load_best(path) -> dict[int, BlockSizes]:
  """head_dim -> BlockSizes from a sweep JSON ("best")."""
  best = json.loads(Path(path).read_text())["best"]
  return {int(d): BlockSizes(**{k: KernelBlocks(*v) for k, v in kernels.items()}) for d, kernels in best.items()}


if __name__ == "__main__":
  sys.exit(main())
