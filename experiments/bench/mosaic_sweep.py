"""Block-size sweep of the Mosaic GPU attention (`flash_attention(impl="mosaic")`) on a Hopper GPU: which
`MosaicBlocks` is fastest at the kernel issue's shapes (b2 h16, causal, bfloat16, --seq-len; head_dim 128, then 64).

Two phases per shape, each candidate checked against the float32 reference (a row over 2e-2 relative error never
wins) and timed as the whole op, with cuDNN timed in the same process:
1. forward: forward_q x forward_kv x stages x pingpong, timing the forward alone;
2. backward: with phase 1's winner, dq_kv x dkdv_kv x dkdv_q, timing forward + backward.
Each phase starts from its first candidate (the current default, then phase 1's winner); candidates whose buffers
do not fit an sm_90 block's shared memory are listed as skipped (`mosaic_blocks.shared_memory_bytes`). Every row
shows its speed-up over the starting blocks and cuDNN's time over its own, as ratios of medians with 95% bootstrap
intervals over the per-call times (`auto_choices.ratio_interval`) and a verdict in words. A candidate replaces the
starting blocks only when its interval lies above 1 (the fastest such); ties keep them. Prints the winning
`MosaicBlocks(...)` per head_dim (the defaults in `mosaic_blocks.MosaicBlocks` change only from such a run).

  python experiments/bench/mosaic_sweep.py [--json sweep.json] [--budget-s 150] [--head-dims 128,64]
      [--seq-len 4096] [--target-s 0.15]
  python experiments/bench/mosaic_sweep.py --dry-run   # CPU: tiny shapes, impl="xla" stands in (times mean nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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
from auto_choices import ratio_interval, verdict  # noqa: E402
from pallas_kernels.attention import MosaicBlocks, attention_reference, flash_attention  # noqa: E402
from pallas_kernels.attention import mosaic_blocks as mb  # noqa: E402

FORWARD_GRID = {"forward_q": (64, 128), "forward_kv": (64, 128, 256), "stages": (2, 3), "pingpong": (True, False)}
BACKWARD_GRID = {"dq_kv": (64, 128), "dkdv_kv": (64, 128), "dkdv_q": (64, 128)}
TOLERANCE = 2e-2
SHAPES = [(2, 16, 128), (2, 16, 64)]  # (batch, heads, head_dim)
DRY_RUN_SHAPE = (1, 64, 2, 64)  # (batch, seq, heads, head_dim)


def candidates(grid: dict, base: MosaicBlocks, head_dim: int, itemsize: int = 2):
  """(fitting, skipped): `base` first, then every combination of `grid`'s values over it, without repeats; those
  whose shared memory exceeds an sm_90 block's are `skipped`."""
  seen, fitting, skipped = set(), [], []
  combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
  for blocks in [base] + [dataclasses.replace(base, **combo) for combo in combos]:
    if blocks in seen:
      continue
    seen.add(blocks)
    try:
      blocks.check()
      mb.check_shared_memory(blocks, mb.head_dim_pad(head_dim), itemsize)
      fitting.append(blocks)
    except ValueError:
      skipped.append(blocks)
  return fitting, skipped


def describe(blocks: MosaicBlocks, fields) -> str:
  return ", ".join(f"{name}={getattr(blocks, name)}" for name in fields)


def measure(qkv, dout, blocks, *, backward, impl, timing, reference):
  """(per-call ms, largest relative error) of the whole op's forward, or forward + backward."""
  if impl == "cudnn":
    fn = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
  else:
    fn = lambda q, k, v: flash_attention(q, k, v, causal=True, impl=impl,
                                         block_sizes=blocks if impl == "mosaic" else None)
  if backward:
    compiled, _, (out, grads) = m.compile_fn(m.forward_backward_fn(fn), qkv + (dout,))
    errors = [m.rel_err(got, want) for got, want in zip((out, *grads), (reference[0], *reference[1]))]
    return m.time_fn(compiled, [qkv + (dout,)], **timing)["times"], max(errors)
  compiled, _, out = m.compile_fn(m.forward_fn(fn), qkv)
  return m.time_fn(compiled, [qkv], **timing)["times"], m.rel_err(out, reference[0])


def ratio_text(name, base_times, times) -> str:
  """'name 1.08x [1.02, 1.14] faster (1.08x)': median(base) / median(times) with its interval and verdict."""
  ratio, lo, hi = ratio_interval(base_times, times)
  return f"{name} {ratio:.2f}x [{lo:.2f}, {hi:.2f}] {verdict(ratio, lo, hi)}"


def pick(start, timed):
  """The fastest of `timed` ((times, blocks) of the rows within tolerance) whose speed-up over `start`'s times has
  a 95% interval above 1, else `start` (a tie or slower); the fastest by median when `start` itself failed."""
  start_times = next((times for times, blocks in timed if blocks == start), None)
  if start_times is None:
    return min(timed, key=lambda row: np.median(row[0]))[1] if timed else start
  faster = [(ratio_interval(start_times, times), blocks) for times, blocks in timed if blocks != start]
  faster = [(ratio, blocks) for (ratio, lo, _), blocks in faster if lo > 1]
  return max(faster, key=lambda row: row[0])[1] if faster else start


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--json", default=None, help="write every row and the best blocks here (rewritten as it goes)")
  p.add_argument("--budget-s", type=float, default=150.0, help="no candidate starts after this many seconds")
  p.add_argument("--target-s", type=float, default=0.15, help="time spent per timing loop")
  p.add_argument("--head-dims", default="128,64", help="which shapes, by head_dim (comma-separated)")
  p.add_argument("--seq-len", type=int, default=4096, help="the shapes' sequence length (the targets: 2048-8192)")
  p.add_argument("--dry-run", action="store_true", help="CPU: tiny shapes, impl='xla' in place of 'mosaic'")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if not args.dry_run and jax.default_backend() != "gpu":
    print(f"error: the sweep needs a Hopper GPU (backend here: {jax.default_backend()}); --dry-run on CPU",
          file=sys.stderr)
    return 2
  impl = "xla" if args.dry_run else "mosaic"
  timing = dict(warmup=1 if args.dry_run else 2, min_reps=3 if args.dry_run else 5, max_reps=200,
                target_s=0.02 if args.dry_run else args.target_s)
  deadline = time.monotonic() + args.budget_s
  result = dict(env=dict(jax=jax.__version__, device=jax.devices()[0].device_kind, impl=impl), rows=[], best={})

  def emit(row):
    result["rows"].append(row)
    print("  " + "  ".join(str(row[k]) for k in ("phase", "blocks", "status")) +
          (f"  {row['ms']:.3f} ms  err {row['err']:.1e}  {row['vs_start']}{row['vs_cudnn']}" if "ms" in row else ""),
          flush=True)
    if args.json:
      Path(args.json).write_text(json.dumps(result, indent=1))

  dims = {int(d) for d in args.head_dims.split(",")}
  shapes = ([DRY_RUN_SHAPE] if args.dry_run else
            [(b, args.seq_len, h, d) for b, h, d in SHAPES if d in dims])
  for batch, seq, heads, dim in shapes:
    label = f"b{batch} s{seq} h{heads} d{dim} causal"
    print(f"{label}:", flush=True)
    rng = np.random.default_rng(dim)
    qkv = tuple(jnp.asarray(rng.standard_normal((batch, seq, heads, dim), np.float32), jnp.bfloat16)
                for _ in range(3))
    dout = jnp.asarray(rng.standard_normal((batch, seq, heads, dim), np.float32), jnp.bfloat16)
    up = tuple(x.astype(jnp.float32) for x in qkv + (dout,))
    with jax.default_matmul_precision("highest"):
      _, _, reference = m.compile_fn(m.forward_backward_fn(lambda q, k, v: attention_reference(q, k, v, causal=True)),
                                     up, timed=False)
    cudnn = {}
    if not args.dry_run:
      for backward in (False, True):
        cudnn[backward] = measure(qkv, dout, None, backward=backward, impl="cudnn", timing=timing,
                                  reference=reference)[0]
        print(f"  cudnn {'forward+backward' if backward else 'forward'} {np.median(cudnn[backward]):.3f} ms",
              flush=True)
    best = MosaicBlocks()
    for phase, grid, backward in (("forward", FORWARD_GRID, False), ("backward", BACKWARD_GRID, True)):
      fitting, skipped = candidates(grid, best, dim)
      timed, start_times = [], None
      for blocks in skipped:
        emit(dict(shape=label, phase=phase, blocks=describe(blocks, grid), status="skip: shared memory"))
      for blocks in fitting:
        row = dict(shape=label, phase=phase, blocks=describe(blocks, grid))
        if time.monotonic() > deadline:
          emit({**row, "status": "skip: time budget"})
          continue
        try:
          times, err = measure(qkv, dout, blocks, backward=backward, impl=impl, timing=timing, reference=reference)
        except Exception as e:  # noqa: BLE001  (a sweep row, not a crash)
          traceback.print_exception(e, file=sys.stderr)
          emit({**row, "status": f"FAIL {type(e).__name__}: {str(e).splitlines()[0][:120]}"})
          continue
        ok = err < TOLERANCE
        start_times = times if blocks == best else start_times
        emit({**row, "status": "ok" if ok else f"ERR>{TOLERANCE:g}", "ms": float(np.median(times)), "err": err,
              "vs_start": "start" if start_times is None or blocks == best else ratio_text("vs start", start_times,
                                                                                          times),
              "vs_cudnn": f"; {ratio_text('cudnn/this', cudnn[backward], times)}" if cudnn else "", "times": times})
        if ok:
          timed.append((times, blocks))
      best = pick(best, timed)
    result["best"][str(dim)] = dataclasses.asdict(best)
    print(f"best for d{dim}: MosaicBlocks({describe(best, [f.name for f in dataclasses.fields(best)])})", flush=True)
    if args.json:
      Path(args.json).write_text(json.dumps(result, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
