"""CPU train-step benchmark: aira_jax's jitted step against the same model in PyTorch (eager, torch.compile).

Presets (batch 32 x seq 128, float32, AdamW with global-norm clipping 1.0, constant lr):
  tiny     `preset_config("tiny")`, layout "AM" * 2 (4 layers, width 32, 4 heads / 2 KV, FFN 64, vocab 64).
  proxy64  `preset_config("proxy", d_model=64, num_heads=4, ffn_dim=256, vocab_size=256)`, layout "AM" * 8.
JAX: `LanguageModel` + `make_optimizer` + `jit_train_step` on a one-device mesh; params / opt_state are
donated and threaded. PyTorch: `_torch_model.TorchLM` (same parameter count, checked), `torch.optim.AdamW`.
Blocks alternate (jax, torch eager, torch compiled) for `--rounds` rounds of `--steps` steps each, after
warm-up; each step is timed on its own (JAX: until `jax.block_until_ready` of every output) and the table
shows the median. The fp32 matmul ceiling (2048^3 `jnp.dot` / `torch.mm`) is measured in the same run.
Recompiles: the jitted step's `_cache_size()` must stay 1 (one compile, warm-up included; the inputs are placed on
the mesh first) and the `backend_compile` events seen by a `jax.monitoring` listener must not change over the
timed steps (AssertionError otherwise). Minor page faults per step are counted for each framework (`getrusage`).

Host memory: the process applies `aira_jax.host_memory.keep_freed_memory()` before JAX starts (XLA:CPU's
per-step temporary buffer is then reused instead of mapped and faulted anew every step);
run with AIRA_JAX_KEEP_FREED_MEMORY=0 to measure glibc's default. `--cpu-devices N` runs the JAX step
data-parallel on N CPU devices (`jax_num_cpu_devices`, mesh data=N, the batch split between them);
`--branches K` computes the gradient as K independent slices of the batch (`parallel_branches`, summed). PyTorch
always runs one process with `torch.get_num_threads()` threads.

`--dtype bfloat16`: mixed precision in both frameworks, float32 parameters and optimizer: JAX's
`ModelConfig.dtype="bfloat16"` (bf16 activations and matmul operands), PyTorch's forward under
`torch.autocast("cpu", torch.bfloat16)`.

  python experiments/bench/train_step.py [--presets tiny,proxy64] [--rounds 3] [--steps 10] [--no-compile]
      [--hlo-stats] [--cpu-devices 1] [--branches 1] [--dtype float32]
Needs PyTorch (CPU build), not a dependency of aira_jax: `pip install torch`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(os.path.dirname(_HERE))]  # this folder and the repo root
from aira_jax import host_memory  # noqa: E402

MALLOC_KEPT = host_memory.keep_freed_memory()  # AIRA_JAX_KEEP_FREED_MEMORY=0 measures glibc's default

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

try:
  import torch
except ImportError:
  sys.exit("train_step.py needs PyTorch: pip install torch (CPU build), e.g. pip install torch==2.13.0")

import _torch_model  # noqa: E402

from aira_jax.models import LanguageModel, count_params, flops_per_token, preset_config  # noqa: E402
from aira_jax.train import MeshConfig, OptimizerConfig, jit_train_step, make_mesh, make_optimizer  # noqa: E402
from aira_jax.train.mesh import batch_sharding, place_train_state  # noqa: E402

BATCH, SEQ = 32, 128
OPT = dict(lr=3e-4, weight_decay=0.1, b1=0.9, b2=0.95, eps=1e-8)
PRESETS = {
    "tiny": ("AM" * 2, lambda: preset_config("tiny")),
    "proxy64": ("AM" * 8, lambda: preset_config("proxy", d_model=64, num_heads=4, ffn_dim=256, vocab_size=256)),
}
COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, secs, **kw: COMPILES.append(event) if "backend_compile" in event else None)


def matmul_ceiling(n=2048, reps=5):
  """GFLOP/s of an n x n x n float32 matmul: (jax, torch), median of `reps` after one warm-up."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  ta = torch.randn(n, n)

  def median_s(fn):
    fn()
    times = []
    for _ in range(reps):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    return statistics.median(times)

  flops = 2 * n ** 3 / 1e9
  return (flops / median_s(lambda: dot(a, a).block_until_ready()), flops / median_s(lambda: torch.mm(ta, ta)))


def make_batch(vocab):
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, vocab, (BATCH, SEQ + 1), dtype=np.int32)
  return tokens[:, :-1], tokens[:, 1:]


class JaxRunner:
  """aira_jax's train step; `step()` runs one and blocks on every output."""

  name = "jax"

  def __init__(self, layout, config, inputs, targets, hlo_stats, cpu_devices=1, branches=1):
    model = LanguageModel(layout, config, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    self.params_count = sum(x.size for x in jax.tree.leaves(params))
    assert self.params_count == count_params(layout, config).total
    optimizer = make_optimizer(OptimizerConfig(name="adamw", schedule="constant", clip_norm=1.0, **OPT), params)
    opt_state = optimizer.init(params)
    mesh = make_mesh(MeshConfig(data=cpu_devices, fsdp=1, tensor=1), devices=jax.devices()[:cpu_devices])
    params, opt_state = place_train_state(params, opt_state, mesh)
    self.batch = jax.device_put({"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets)},
                                batch_sharding(mesh))
    start = time.perf_counter()
    step = jit_train_step(graphdef, optimizer, mesh, params, opt_state, parallel_branches=branches)
    self.fn = step.lower(params, opt_state, self.batch, {}, np.float32(1.0)).compile()
    if hlo_stats:
      print_hlo_stats(self.fn.as_text())
    self.state = (params, opt_state)
    self.step()
    self.compile_s = time.perf_counter() - start

  def step(self):
    params, opt_state, metrics = self.fn(*self.state, self.batch, {}, np.float32(1.0))
    jax.block_until_ready((params, opt_state, metrics))
    self.state = (params, opt_state)
    return float(metrics["loss"])


class TorchRunner:
  """The PyTorch twin: forward + backward (optionally `torch.compile`d), clipping and AdamW, eagerly."""

  def __init__(self, layout, config, inputs, targets, compiled):
    torch.manual_seed(0)
    self.name = "torch.compile" if compiled else "torch eager"
    self.autocast = config.dtype == "bfloat16"
    self.model = _torch_model.TorchLM(layout, config, SEQ)
    self.params_count = sum(p.numel() for p in self.model.parameters())
    self.opt = _torch_model.make_adamw(self.model, OPT["lr"], OPT["weight_decay"], (OPT["b1"], OPT["b2"]),
                                       OPT["eps"])
    self.inputs, self.targets = torch.from_numpy(inputs).long(), torch.from_numpy(targets).long()
    self.loss = _torch_model.loss_fn
    if compiled:
      self.loss = torch.compile(_torch_model.loss_fn)
    start = time.perf_counter()
    self.step()
    self.compile_s = time.perf_counter() - start

  def step(self):
    self.opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      loss = self.loss(self.model, self.inputs, self.targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
    self.opt.step()
    return loss.item()


def print_hlo_stats(text):
  """Counts of the optimized HLO's top-level instructions by opcode (fusions by kind)."""
  import collections
  import re
  counts = collections.Counter()
  entry = text[text.index("ENTRY"):]
  for match in re.finditer(r"= \S+ (\w[\w-]*)\(.*?(?:kind=(\w+))?", entry):
    counts[match.group(1)] += 1
  fusion_kinds = collections.Counter(re.findall(r"fusion\(.*kind=(\w+)", entry))
  print(f"  HLO entry: {sum(counts.values())} instructions; top: {counts.most_common(8)}; fusions {dict(fusion_kinds)}")
  print(f"  HLO all computations: {text.count(' dot(')} dots, {text.count(' fusion(')} fusions, "
        f"{text.count(' while(')} whiles, {text.count(' custom-call(')} custom-calls")


def bench_preset(name, args):
  layout, make_config = PRESETS[name]
  config = dataclasses.replace(make_config(), dtype=args.dtype)
  inputs, targets = make_batch(config.vocab_size)
  print(f"\n== {name}: {config.dtype} compute, layout {layout}, d_model {config.d_model}, heads {config.num_heads}/"
        f"{config.resolved_kv_heads}, ffn {config.ffn_dim}, vocab {config.vocab_size}, batch {BATCH} x seq {SEQ}")
  runners = [JaxRunner(layout, config, inputs, targets, args.hlo_stats, args.cpu_devices, args.branches),
             TorchRunner(layout, config, inputs, targets, False)]
  if not args.no_compile:
    try:
      runners.append(TorchRunner(layout, config, inputs, targets, True))
    except Exception as error:  # noqa: BLE001 - a benchmark row, not a crash
      print(f"  torch.compile skipped: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
  counts = {r.name: r.params_count for r in runners}
  print(f"  parameters: {counts}; first-step (compile) s: "
        + ", ".join(f"{r.name} {r.compile_s:.1f}" for r in runners))
  assert len(set(counts.values())) == 1, f"parameter counts differ: {counts}"
  for r in runners:
    r.step()  # second warm-up step
  jax_runner = runners[0]
  cache_before, compiles_before = jax_runner.fn._cache_size(), len(COMPILES)
  times = {r.name: [] for r in runners}
  faults = {r.name: 0 for r in runners}
  losses = {}
  for _ in range(args.rounds):
    for r in runners:
      faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      for _ in range(args.steps):
        start = time.perf_counter()
        losses[r.name] = r.step()
        times[r.name].append((time.perf_counter() - start) * 1e3)
      faults[r.name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
  cache_after, compiles_after = jax_runner.fn._cache_size(), len(COMPILES)
  print(f"  jax recompiles over timed steps: cache_size {cache_before}->{cache_after}, "
        f"backend_compile events {compiles_after - compiles_before}")
  assert cache_after == cache_before == 1 and compiles_after == compiles_before, "the jitted step recompiled"
  print("  last loss: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
  flops = flops_per_token(layout, config, SEQ, training=True) * BATCH * SEQ
  return [(name, r.name, counts[r.name], statistics.median(times[r.name]), min(times[r.name]),
           max(times[r.name]), flops, faults[r.name] / len(times[r.name])) for r in runners]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--presets", default="tiny,proxy64")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
  parser.add_argument("--hlo-stats", action="store_true", help="print op counts of the compiled JAX step")
  parser.add_argument("--cpu-devices", type=int, default=1,
                      help="run the JAX step data-parallel on this many CPU devices (default 1)")
  parser.add_argument("--branches", type=int, default=1,
                      help="the JAX step's parallel_branches: independent slices of the batch (default 1)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="compute dtype of both frameworks (parameters and optimizer stay float32)")
  args = parser.parse_args()
  if not 1 <= args.cpu_devices <= BATCH or BATCH % args.cpu_devices:
    parser.error(f"--cpu-devices must divide the batch size {BATCH}")
  if not 1 <= args.branches <= BATCH or BATCH % (args.cpu_devices * args.branches):
    parser.error(f"--cpu-devices x --branches must divide the batch size {BATCH}")
  jax.config.update("jax_num_cpu_devices", args.cpu_devices)
  start = time.perf_counter()
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}, JAX step on {args.cpu_devices} device(s), "
        f"{args.branches} branch(es), {args.dtype} compute), torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs; malloc: "
        + ("freed memory kept (aira_jax.host_memory)" if MALLOC_KEPT else "glibc default"))
  jax_ceiling, torch_ceiling = matmul_ceiling()
  print(f"fp32 2048^3 matmul: jnp.dot {jax_ceiling:.1f} GFLOP/s, torch.mm {torch_ceiling:.1f} GFLOP/s")
  rows = []
  for name in args.presets.split(","):
    rows += bench_preset(name.strip(), args)
  print(f"\nmedian of {args.rounds} x {args.steps} steps per framework, blocks alternated; "
        f"{BATCH * SEQ} tokens/step; ceiling = measured 2048^3 fp32 matmul ({jax_ceiling:.0f} GFLOP/s jax, "
        f"{torch_ceiling:.0f} torch)")
  print("| preset | framework | params | step ms (min-max) | tokens/s | GFLOP/s | % of ceiling | page faults/step "
        "| vs torch eager |")
  print("|---|---|---|---|---|---|---|---|---|")
  for preset, framework, params, median, low, high, flops, step_faults in rows:
    eager = next(r[3] for r in rows if r[0] == preset and r[1] == "torch eager")
    ceiling = jax_ceiling if framework == "jax" else torch_ceiling
    gflops = flops / median / 1e6
    print(f"| {preset} | {framework} | {params:,} | {median:.1f} ({low:.1f}-{high:.1f}) | "
          f"{BATCH * SEQ / median * 1e3:,.0f} | {gflops:.1f} | {100 * gflops / ceiling:.1f}% | {step_faults:,.0f} | "
          f"{median / eager:.2f}x |")
  print("vs torch eager = step time / torch eager step time (jax row: the JAX/PyTorch-eager ratio; <= 1 means "
        f"JAX is as fast or faster). Run time {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
  main()
