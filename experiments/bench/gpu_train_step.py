"""A whole model's training step on one accelerator: tokens/s, MFU and memory (issue 23, item 3).

For each layout (default: the Llama-style "AM" alternation and the Nemotron-like hybrid with Mamba-2 layers, at
the preset's depth) and each attention impl (`ModelConfig.attention_impl`: "auto" = the Pallas kernels on a GPU,
"mosaic" = the Hopper kernels in Pallas Mosaic GPU, "xla", "cudnn" = cuDNN's fused attention; an impl the device
lacks becomes an error row), the project's one training path (`aira_jax.train.trainer.Trainer`: the step jitted once
with shardings and donation, compiled ahead with its preflight) trains the preset (default `350m`) in mixed precision
(float32 parameters and optimizer state, bfloat16 compute) on random tokens, `--batch` rows of `--seq` tokens
a step (default 8 x 2048), with AdamW.

Timing (experiments/bench/_measure.py conventions: warm up, block, median): `--warmup` steps, then `--repeats`
blocks of `--steps` steps, each block timed from a block_until_ready to the next over rotating random batches;
the step time is the median block's mean. Reported per row:
- tokens/s and the step time;
- MFU: the model's training FLOPs per step (`aira_jax.models.flops_per_token(..., training=True)` x tokens:
  matmuls and attention scores, 3x the forward) over the run time, divided by (a) the bf16 matmul rate measured
  in the same run (a large `jnp.dot`, median of repeats) and (b) the card's spec peak where known (dense bf16);
- XLA's FLOPs of the compiled step over the analytic count, and the step's memory per device from XLA's memory
  analysis (the preflight), plus the process's peak bytes in use where the backend reports it;
- the ratio of tokens/s to the first impl's in the same run.

  python experiments/bench/gpu_train_step.py [--preset 350m] [--layouts llama,nemotron] [--impls auto,mosaic,xla,cudnn]
      [--batch 8] [--seq 2048] [--steps 10] [--repeats 3] [--warmup 2] [--json out.json]
  CPU dry run: --preset tiny --batch 2 --seq 64 --steps 2 --repeats 1 --warmup 1 --peak-size 256
A layout is a baseline name (aira_jax.compose.families.BASELINES) or layout text ("AM" * 16, "2A+30M", ...).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from aira_jax.compose.families import BASELINES, baseline_layout  # noqa: E402
from aira_jax.layout import Layout  # noqa: E402
from aira_jax.models import LanguageModel, flops_per_token, preset_config  # noqa: E402
from aira_jax.models.presets import PRESETS  # noqa: E402
from aira_jax.train.data import global_batch  # noqa: E402
from aira_jax.train.mesh import MeshConfig, make_mesh  # noqa: E402
from aira_jax.train.optimizers import OptimizerConfig, make_optimizer  # noqa: E402
from aira_jax.train.preflight import PreflightError, format_bytes  # noqa: E402
from aira_jax.train.step import split_params  # noqa: E402
from aira_jax.train.trainer import Trainer  # noqa: E402

SPEC_BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
"""Dense bf16 tensor-core peaks (FLOP/s) by device kind, from the vendors' data sheets (SXM parts)."""


def spec_peak(device: jax.Device) -> float | None:
  """The data-sheet bf16 peak of `device`, or None for a kind not in `SPEC_BF16_PEAK`."""
  kind = getattr(device, "device_kind", "")
  return next((peak for name, peak in SPEC_BF16_PEAK.items() if name in kind), None)


def measured_matmul_peak(size: int, repeats: int = 10) -> float:
  """FLOP/s of a (size x size) @ (size x size) bf16 product on random inputs, median of `repeats` timings."""
  keys = jax.random.split(jax.random.key(0), 2)
  a, b = (jax.random.normal(k, (size, size), jnp.bfloat16) for k in keys)
  dot = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  jax.block_until_ready(dot(a, b))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(dot(a, b))
    times.append(time.perf_counter() - start)
  return 2 * size ** 3 / statistics.median(times)


def parse_layout(name: str, depth: int) -> Layout:
  """A baseline by name at `depth`, or layout text."""
  return baseline_layout(name, depth) if name in BASELINES else Layout.parse(name)


def random_batches(count: int, batch: int, seq: int, vocab: int, mesh) -> list[dict[str, jax.Array]]:
  """`count` batches of random tokens (targets = inputs shifted), placed on the mesh."""
  rng = np.random.default_rng(0)
  out = []
  for _ in range(count):
    tokens = rng.integers(0, vocab, (batch, seq + 1), dtype=np.int32)
    out.append(global_batch({"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}, mesh))
  return out


def run_case(layout: Layout, impl: str, args, device: jax.Device) -> dict:
  """One (layout, impl) row: compile with the preflight, warm up, time; see the module docstring."""
  config = preset_config(args.preset, dtype=args.dtype, attention_impl=impl, max_seq_len=args.seq)
  mesh = make_mesh(MeshConfig(), devices=[device])
  graphdef, state = nnx.split(LanguageModel(layout, config, rngs=nnx.Rngs(0)))
  optimizer = make_optimizer(OptimizerConfig(lr=3e-4, weight_decay=0.1), split_params(state)[0])
  trainer = Trainer(graphdef, optimizer, mesh=mesh, label=f"{layout.run_length()} {impl}",
                    compute_dtype=args.dtype)
  params, opt_state = trainer.init(state)
  del state
  batches = random_batches(3, args.batch, args.seq, config.vocab_size, mesh)
  inputs = trainer.model_inputs({})
  row = {"layout": layout.run_length(), "impl": impl, "params": int(sum(x.size for x in jax.tree.leaves(params)))}
  try:
    step, report, compile_s = trainer.compile(params, opt_state, batches[0], inputs)
  except PreflightError as e:
    return {**row, "error": str(e)}
  lr = np.float32(1.0)
  for i in range(args.warmup):
    params, opt_state, metrics = step(params, opt_state, batches[i % len(batches)], inputs, lr)
  jax.block_until_ready(metrics)
  blocks = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    for i in range(args.steps):
      params, opt_state, metrics = step(params, opt_state, batches[i % len(batches)], inputs, lr)
    jax.block_until_ready(metrics)
    blocks.append((time.perf_counter() - start) / args.steps)
  step_s = statistics.median(blocks)
  tokens = args.batch * args.seq
  model_flops = flops_per_token(layout, config, args.seq, training=True) * tokens
  stats = device.memory_stats() or {}
  return {**row, "compile_s": compile_s, "step_s": step_s, "step_s_spread": [min(blocks), max(blocks)],
          "tokens_per_s": tokens / step_s, "model_flops_per_step": model_flops,
          "achieved_flops": model_flops / step_s, "xla_over_analytic": (report.flops or 0) / model_flops or None,
          "step_memory_bytes": report.peak_memory_bytes, "process_peak_bytes": stats.get("peak_bytes_in_use"),
          "loss": float(metrics["loss"])}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="350m", choices=sorted(PRESETS))
  parser.add_argument("--layouts", default="llama,nemotron", help="baseline names or layout text, comma-separated")
  parser.add_argument("--impls", default="auto,mosaic,xla,cudnn",
                      help="attention impls, the first is the ratios' baseline")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq", type=int, default=2048)
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
  parser.add_argument("--repeats", type=int, default=3, help="timed blocks (the median is reported)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--peak-size", type=int, default=8192, help="side of the matmul that measures the peak")
  parser.add_argument("--json", help="write every row's numbers here")
  args = parser.parse_args()
  if min(args.batch, args.seq, args.steps, args.repeats, args.warmup) < 1:
    parser.error("--batch, --seq, --steps, --repeats and --warmup must be positive")
  device = jax.local_devices()[0]
  depth = PRESETS[args.preset].depth
  try:
    layouts = [parse_layout(name.strip(), depth) for name in args.layouts.split(",")]
  except ValueError as e:
    parser.error(f"--layouts: {e}")
  impls = [impl.strip() for impl in args.impls.split(",")]
  started = time.perf_counter()
  peak = measured_matmul_peak(args.peak_size)
  spec = spec_peak(device)
  print(f"jax {jax.__version__}, {device.platform} {getattr(device, 'device_kind', '')}; preset {args.preset} "
        f"(depth {depth}), batch {args.batch} x seq {args.seq}, {args.dtype} compute; measured bf16 matmul "
        f"({args.peak_size}^3): {peak / 1e12:.1f} TFLOP/s; spec peak: "
        f"{'unknown' if spec is None else f'{spec / 1e12:.1f} TFLOP/s'}", flush=True)
  rows = []
  for layout in layouts:
    for impl in impls:
      row = run_case(layout, impl, args, device)
      rows.append(row)
      print(f"  {row['layout'][:40]} {impl}: " + (row["error"] if "error" in row else
            f"{row['tokens_per_s']:,.0f} tokens/s, {row['step_s'] * 1e3:.1f} ms/step, compile {row['compile_s']:.1f} s"),
            flush=True)
      gc.collect()
  print(f"\n| layout | impl | params | tokens/s | ms/step (min-max) | MFU vs measured | MFU vs spec | XLA/analytic "
        f"FLOPs | step memory | tokens/s vs {impls[0]} |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for row in rows:
    if "error" in row:
      print(f"| {row['layout']} | {row['impl']} | {row['params']:,} | {row['error']} |||||||")
      continue
    base = next((r for r in rows if r["layout"] == row["layout"] and r["impl"] == impls[0] and "error" not in r),
                None)
    ratio = f"{row['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
    spread = "-".join(f"{s * 1e3:.1f}" for s in row["step_s_spread"])
    memory = "-" if row["step_memory_bytes"] is None else format_bytes(row["step_memory_bytes"])
    mfu_spec = "-" if spec is None else f"{100 * row['achieved_flops'] / spec:.1f}%"
    xla = "-" if not row["xla_over_analytic"] else f"{row['xla_over_analytic']:.2f}"
    print(f"| {row['layout']} | {row['impl']} | {row['params']:,} | {row['tokens_per_s']:,.0f} | "
          f"{row['step_s'] * 1e3:.1f} ({spread}) | {100 * row['achieved_flops'] / peak:.1f}% | {mfu_spec} | {xla} | "
          f"{memory} | {ratio} |")
  print(f"run time {time.perf_counter() - started:.0f} s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"device": str(device), "jax": jax.__version__, "measured_peak": peak, "spec_peak": spec,
                 "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
