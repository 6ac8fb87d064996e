"""Resource usage of the Pallas flash-attention kernels' Triton code on sm_90, without a GPU: for each kernel
(forward, dk/dv, dq, fused backward) and each candidate launch configuration of `attention_sweep.py` (the
current default first; float32: the float32 default only), the kernel is lowered (causal), compiled with the
installed `triton` and read back with its cuobjdump: registers per thread, spill stack bytes, shared memory,
whether wgmma is issued. A configuration over 227 KiB of shared memory cannot launch on an H100/H200 (163 KiB on
an A100, 99 KiB on sm_86/sm_89); spills cost memory traffic.

  python experiments/bench/triton_resources.py [--head-dims 128,64] [--capability 90] [--kernels fused,dq]
      [--dtype float32]

Needs `triton` (pip install triton; no GPU). Its version may differ from the one in the GPU machine's jaxlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for pallas_kernels

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels import triton_inspect  # noqa: E402
from pallas_kernels.attention import BlockSizes, flash_attention, tiling  # noqa: E402
from pallas_kernels.attention.autotuning import default_candidates  # noqa: E402

SEQ, HEADS = 1024, 2
SHARED_LIMIT = 227 * 1024


def kernel_resources(head_dim: int, kernel: str, blocks, capability: int, dtype=jnp.bfloat16):
  """Resources of `kernel` lowered with `blocks` (the other kernels at their defaults)."""
  sizes = BlockSizes.for_kernel(kernel, blocks)
  q = jax.ShapeDtypeStruct((1, SEQ, HEADS, head_dim), dtype)
  loss = lambda q, k, v: flash_attention(q, k, v, impl="pallas", _backend="gpu",
                                         block_sizes=sizes).astype(jnp.float32).sum()
  modules = triton_inspect.triton_modules(jax.grad(loss, argnums=(0, 1, 2)), (q, q, q))
  tilings = tiling.make_tilings("gpu", q_len=SEQ, kv_len=SEQ, head_dim=head_dim, groups=1, block_sizes=sizes,
                                causal=True, itemsize=jnp.dtype(dtype).itemsize)
  t = getattr(tilings, kernel)
  compiled = triton_inspect.compile_module(modules[tilings.kernels.index(kernel)], num_warps=t.num_warps,
                                           num_stages=t.num_stages, capability=capability)
  return triton_inspect.resources(compiled)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--head-dims", default="128,64")
  p.add_argument("--capability", type=int, default=90, help="CUDA compute capability as an int (90 = sm_90)")
  p.add_argument("--kernels", default=",".join(tiling.KERNELS), help="which kernels (comma-separated)")
  p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="the inputs' dtype")
  args = p.parse_args(argv)
  kernels = args.kernels.split(",")
  if set(kernels) - set(tiling.KERNELS):
    p.error(f"--kernels: choose from {', '.join(tiling.KERNELS)}")
  dtype = jnp.dtype(args.dtype)
  print(f"jax {jax.__version__}, triton {__import__('triton').__version__}, sm_{args.capability}, {args.dtype}, "
        f"causal, seq {SEQ}")
  print("| head_dim | kernel | (block_q, block_k, warps, stages) | registers | spill stack B | shared KiB | wgmma |")
  print("|---|---|---|---|---|---|---|")
  for dim in (int(d) for d in args.head_dims.split(",")):
    for kernel in kernels:
      for i, blocks in enumerate(default_candidates(dim, kernel, itemsize=dtype.itemsize)):
        label = (blocks.block_q, blocks.block_k, blocks.num_warps, blocks.num_stages)
        try:
          r = kernel_resources(dim, kernel, blocks, args.capability, dtype)
          over = " (over the limit)" if r.shared_bytes > SHARED_LIMIT else ""
          print(f"| {dim} | {kernel} | {label}{' default' if i == 0 else ''} | {r.registers} | {r.stack_bytes} | "
                f"{r.shared_bytes / 1024:.0f}{over} | {'yes' if r.wgmma else 'no'} |", flush=True)
        except Exception as error:  # noqa: BLE001  (a table row, not a crash)
          print(f"| {dim} | {kernel} | {label} | FAIL: {type(error).__name__}: {str(error).splitlines()[0][:100]} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
