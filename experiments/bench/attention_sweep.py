"""Block-size sweep of the Pallas flash-attention kernels on a GPU: `pallas_kernels.attention.autotune` on the kernel
issue's shapes (b2 h16 s4096 or --seq-len, causal, bfloat16 or --dtype float32; head_dim 128, then 64), printing
every candidate of each kernel (forward, dk/dv, dq; with --backward auto or fused the fused backward too: time alone,
error against the float32 reference), then the whole op with the chosen blocks (with --backward auto, with the best
split and the best fused backward, and, as an experiment, the fused one with relaxed-order atomics:
`_relaxed_atomics.py`) against the current defaults and cuDNN, in the same process.

  python experiments/bench/attention_sweep.py [--json sweep.json] [--budget-s 150] [--head-dims 128,64]
      [--seq-len 4096] [--max-candidates N] [--backward split|fused|auto] [--dtype float32] [--quick]

The JSON holds every trial and, under "best", the chosen (block_q, block_k, warps, stages) per head_dim and
kernel, and the faster backward ("split" or "fused"); `kernels.py --attention-blocks sweep.json` runs the
benchmark with them. --quick: tiny shapes in the Pallas interpreter on CPU (a dry run of this script; its times
mean nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from _relaxed_atomics import relaxed_atomics  # noqa: E402
from pallas_kernels.attention import BlockSizes, KernelBlocks, autotune, flash_attention, tiling  # noqa: E402
from pallas_kernels.attention.autotuning import BACKWARDS, default_candidates  # noqa: E402

SHAPES = [(2, 16, 128), (2, 16, 64)]  # (batch, heads, head_dim) at --seq-len; head_dim 128 has the larger gap
QUICK_SHAPES = [(1, 64, 2, 16)]
RELAXED = "fused, relaxed atomics"  # an experiment (_relaxed_atomics.py), not a library option
QUICK_CANDIDATES = {name: [KernelBlocks(), KernelBlocks(32, 16), KernelBlocks(64, 32)] for name in tiling.KERNELS}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--json", default=None, help="write trials and the best candidates here (rewritten as it goes)")
  p.add_argument("--budget-s", type=float, default=150.0, help="no candidate starts after this many seconds")
  p.add_argument("--target-s", type=float, default=0.15, help="time spent per timing loop")
  p.add_argument("--quick", action="store_true", help="tiny shapes in the Pallas interpreter (CPU dry run)")
  p.add_argument("--head-dims", default="128,64", help="which shapes, by head_dim (comma-separated)")
  p.add_argument("--seq-len", type=int, default=4096, help="the shapes' sequence length (the targets: 2048-8192)")
  p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                 help="the inputs' dtype (float32 tunes the float32 defaults and candidates)")
  p.add_argument("--backward", default="split", choices=BACKWARDS,
                 help="which backward kernels to tune (autotune's backward; default split: the fused one measured "
                 "slower, RESULTS.md)")
  p.add_argument("--max-candidates", type=int, default=None,
                 help="first N candidates of each kernel (the current default counts as the first)")
  return p.parse_args(argv)


def _blocks_list(b: KernelBlocks) -> list:
  return [b.block_q, b.block_k, b.num_warps, b.num_stages]


def backward_variants(tuned: BlockSizes, trials) -> list[tuple[str, BlockSizes]]:
  """("tuned (... backward)", tuned), then the tuned blocks with the split and with the fused backward (the whole
  op decides what the kernels timed alone suggest); variants equal to an earlier one, or whose backward had no
  correct candidate, are left out."""
  fused = [t for t in trials if t.kernel == "fused" and t.status == "ok"]
  variants = [(f"tuned ({tuned.backward or 'default'} backward)", tuned),
              ("split", dataclasses.replace(tuned, backward="split"))]
  if fused:
    variants.append(("fused", dataclasses.replace(tuned, backward="fused")))
  return [(name, sizes) for i, (name, sizes) in enumerate(variants) if sizes not in [s for _, s in variants[:i]]]


def whole_op(qkv, dout, sizes, impl, timing):
  """(forward ms, forward+backward ms, (dq, dk, dv) of the first call) of the whole attention op (layout changes
  included)."""
  if impl == "cudnn":
    fn = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
  else:
    fn = lambda q, k, v: flash_attention(q, k, v, causal=True, impl=impl, block_sizes=sizes)
  fwd, _, _ = m.compile_fn(m.forward_fn(fn), qkv)
  fb, _, (_, grads) = m.compile_fn(m.forward_backward_fn(fn), qkv + (dout,))
  return m.time_fn(fwd, [qkv], **timing)["median"], m.time_fn(fb, [qkv + (dout,)], **timing)["median"], grads


def main(argv=None):
  args = parse_args(argv)
  if not args.quick and jax.default_backend() != "gpu":
    raise SystemExit(f"the sweep needs a GPU (backend here: {jax.default_backend()}); --quick for a CPU dry run")
  timing = dict(warmup=2, min_reps=5, max_reps=200, target_s=args.target_s)
  deadline = time.monotonic() + args.budget_s
  env = dict(jax=jax.__version__, device=jax.devices()[0].device_kind, dtype=args.dtype)
  result = dict(env=env, rows=[], best={}, whole=[])

  def emit(row):
    result["rows"].append(row)
    if args.json:
      Path(args.json).write_text(json.dumps(result, indent=1))

  dims = {int(d) for d in args.head_dims.split(",")}
  shapes = [(b, args.seq_len, h, d) for b, h, d in SHAPES if d in dims]
  for batch, seq, heads, dim in (QUICK_SHAPES if args.quick else shapes):
    label = f"b{batch} s{seq} h{heads} d{dim} causal" + ("" if args.dtype == "bfloat16" else f" {args.dtype}")
    rng = np.random.default_rng(dim)
    q, k, v, dout = (jnp.asarray(rng.standard_normal((batch, seq, heads, dim), np.float32), args.dtype)
                     for _ in range(4))
    print(f"{label}:", flush=True)

    def report(trial):
      timing_text = f"{trial.ms:.3f} ms  err {trial.max_err:.1e}  " if trial.ms is not None else ""
      print(f"  {trial.kernel:8s} {str(tuple(_blocks_list(trial.blocks))):22s} {timing_text}{trial.status}",
            flush=True)
      emit(dict(dataclasses.asdict(trial), shape=label, blocks=_blocks_list(trial.blocks)))

    candidates = QUICK_CANDIDATES if args.quick else {
        name: default_candidates(dim, name, itemsize=jnp.dtype(args.dtype).itemsize)[:args.max_candidates]
        for name in tiling.KERNELS}
    tuned, trials = autotune(q, k, v, causal=True, candidates=candidates, backward=args.backward,
                             target_s=args.target_s, budget_s=max(0.0, deadline - time.monotonic()),
                             interpret=args.quick, on_trial=report)
    result["best"][str(dim)] = {name: _blocks_list(getattr(tuned, name)) for name in tiling.KERNELS}
    result["best"][str(dim)]["backward"] = tuned.backward
    impl = "pallas_interpret" if args.quick else "pallas"
    configs = [("default", BlockSizes(), impl)] + [(n, b, impl) for n, b in backward_variants(tuned, trials)]
    fused = [sizes for _, sizes, _ in configs if sizes.backward == "fused"]
    if fused:  # the same fused kernels with relaxed atomics: compared with the acq_rel ones' gradients below
      configs.append((RELAXED, fused[0], impl))
    if not args.quick:
      configs.append(("cudnn", None, "cudnn"))
    grads = {}
    for name, sizes, impl in configs:
      try:
        with relaxed_atomics() if name == RELAXED else contextlib.nullcontext([]) as lowered:
          f_ms, fb_ms, result_grads = whole_op((q, k, v), dout, sizes, impl, timing)
        if sizes is not None and sizes.backward == "fused":  # kept only for the relaxed row's check
          grads[name] = result_grads
        row = dict(shape=label, config=name, fwd_ms=f_ms, fwdbwd_ms=fb_ms)
        if name == RELAXED:  # same sums in another order: bf16 rounding apart at most
          acq_rel = next(n for n, s, _ in configs if s == sizes and n != RELAXED)
          row["err_vs_acq_rel"] = max(m.rel_err(a, b) for a, b in zip(grads[name], grads[acq_rel]))
          row["relaxed_atomics_lowered"] = len(lowered)  # 0 in the interpreter (no Triton lowering)
        result["whole"].append(row)
        check = (f"  ({row['relaxed_atomics_lowered']} atomics lowered relaxed; grads vs acq_rel: "
                 f"{row['err_vs_acq_rel']:.1e})" if name == RELAXED else "")
        print(f"  whole op {name:24s} fwd {f_ms:.3f} ms, fwd+bwd {fb_ms:.3f} ms{check}", flush=True)
      except Exception as e:  # noqa: BLE001  (a benchmark row, not a crash)
        print(f"  whole op {name}: FAIL {type(e).__name__}", flush=True)
        traceback.print_exception(e, file=sys.stderr)
    emit(dict(shape=label, kernel="chosen", blocks=result["best"][str(dim)], status="best"))
  print("\nbest per head_dim (block_q, block_k, warps, stages; None = the default's; backward None = the default):")
  for dim, chosen in result["best"].items():
    print(f"  d{dim}: " + ", ".join(f"{k} {v if k == 'backward' else tuple(v)}" for k, v in chosen.items()))
  print("\nwhole op (ms):")
  cudnn = {w["shape"]: w for w in result["whole"] if w["config"] == "cudnn"}
  for w in result["whole"]:
    ref = cudnn.get(w["shape"])
    ratio = (f"  cudnn/this {ref['fwd_ms'] / w['fwd_ms']:.2f} fwd, {ref['fwdbwd_ms'] / w['fwdbwd_ms']:.2f} f+b"
             if ref else "")
    print(f"  {w['shape']:22s} {w['config']:24s} fwd {w['fwd_ms']:.3f}  f+b {w['fwdbwd_ms']:.3f}{ratio}")
  return 0


def load_best(path) -> dict[int, BlockSizes]:
  """head_dim -> BlockSizes from a sweep JSON ("best")."""
  best = json.loads(Path(path).read_text())["best"]
  return {int(d): BlockSizes(**{k: v if k == "backward" else KernelBlocks(*v) for k, v in kernels.items()})
          for d, kernels in best.items()}


if __name__ == "__main__":
  sys.exit(main())
