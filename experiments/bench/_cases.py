"""Benchmark cases for `kernels.py`: the shapes of each kernel, its random inputs and how to call it.

A case's inputs are float32 numpy arrays (fresh random values, never zeros); `low` marks the ones cast to the
benchmark dtype, the rest (SSM parameters and dt, as the Mamba layers pass them) stay float32. Every input
is differentiated.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

import pallas_kernels as pk
from pallas_kernels.attention import BlockSizes

KERNELS = ("attention", "ssd", "selective_scan")
IMPLS = {
    "attention": ("xla", "reference", "pallas", "pallas_split", "pallas_fused", "pallas_interpret", "cudnn", "mosaic"),
    "ssd": ("xla", "pallas", "pallas_interpret", "triton"),
    "selective_scan": ("xla", "pallas", "pallas_interpret", "triton"),
}


@dataclasses.dataclass(frozen=True)
class Case:
  kernel: str
  label: str  # shape, for the table
  names: tuple[str, ...]  # input names, in call order
  low: tuple[bool, ...]  # which inputs take the benchmark dtype
  make: Callable[[np.random.Generator], tuple[np.ndarray, ...]]  # float32 inputs
  call: Callable[[str], Callable]  # impl -> fn(*inputs) -> output
  flops: float | None = None  # forward FLOPs (attention); backward counts 2.5x


def attention(b, s, h, kv, d, causal=True):
  def make(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return f(b, s, h, d), f(b, s, kv, d), f(b, s, kv, d)

  def call(impl):
    if impl == "cudnn":  # the vendor baseline of the target (GPU only)
      return lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")
    if impl == "reference":  # plain jnp differentiated by JAX (impl="xla" runs xla_attention)
      return lambda q, k, v: pk.attention_reference(q, k, v, causal=causal)
    if impl == "mosaic":  # the Hopper kernels in Pallas Mosaic GPU, their default MosaicBlocks
      return lambda q, k, v: pk.flash_attention(q, k, v, causal=causal, impl="mosaic")
    sizes = ATTENTION_BLOCKS.get(d)
    if impl in ("pallas_split", "pallas_fused"):  # impl="pallas" with the given backward (the blocks as for pallas)
      sizes = dataclasses.replace(sizes or BlockSizes(), backward=impl.removeprefix("pallas_"))
      impl = "pallas"
    return lambda q, k, v: pk.flash_attention(q, k, v, causal=causal, impl=impl, block_sizes=sizes)

  flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
  label = f"b{b} s{s} h{h}/{kv} d{d}" + (" causal" if causal else "")
  return Case("attention", label, ("q", "k", "v"), (True,) * 3, make, call, flops)


def ssd(b, seq, h, p, n, chunk, g=1):
  def make(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return (f(b, seq, h, p), rng.uniform(0.001, 0.1, (b, seq, h)).astype(np.float32),
            -rng.uniform(1.0, 16.0, (h,)).astype(np.float32), f(b, seq, g, n), f(b, seq, g, n), f(h))

  def call(impl):
    return lambda x, dt, A, B, C, D: pk.ssd(x, dt, A, B, C, D=D, chunk_size=chunk, impl=impl)

  label = f"b{b} L{seq} h{h} p{p} n{n} g{g} q{chunk}"
  return Case("ssd", label, ("x", "dt", "A", "B", "C", "D"), (True, False, False, True, True, False), make, call)


def selective_scan(b, seq, d, n, g=1):
  def make(rng):
    f = lambda *shape: rng.standard_normal(shape, np.float32)
    return (f(b, seq, d), 0.5 * f(b, seq, d), -rng.uniform(1.0, n + 1.0, (d, n)).astype(np.float32),
            f(b, seq, g, n), f(b, seq, g, n), f(d), f(b, seq, d), rng.uniform(-4.0, -2.0, (d,)).astype(np.float32))

  def call(impl):
    return lambda u, dl, A, B, C, D, z, db: pk.selective_scan(u, dl, A, B, C, D=D, z=z, delta_bias=db,
                                                              delta_softplus=True, impl=impl)

  label = f"b{b} L{seq} d{d} n{n} g{g}"
  names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
  low = (True, True, False, True, True, False, True, False)
  return Case("selective_scan", label, names, low, make, call)


SETS = ("default", "quick", "targets", "cpu")
# head_dim -> pallas_kernels.attention.BlockSizes for impl="pallas" (kernels.py --attention-blocks); else defaults.
ATTENTION_BLOCKS = {}


def cases(which: str) -> dict[str, list[Case]]:
  """The shapes per kernel: "default" GPU-size (most telling first), "quick" tiny (interpret mode), "targets"
  the shapes of the kernel issue's speed targets (attention seq 2048-8192 x head dim 64/128; SSD seq >= 4096),
  "cpu" the CPU trainer's (experiments/bench/train_step.py: proxy64's attention, batch 32 x seq 128, 4 heads of 16)."""
  if which == "cpu":
    return {
        "attention": [attention(32, 128, 4, 4, 16), attention(8, 512, 4, 4, 32), attention(32, 128, 4, 2, 16)],
        "ssd": [ssd(32, 128, 4, 16, 16, 32)],
        "selective_scan": [selective_scan(32, 128, 128, 16)],
    }
  if which == "targets":
    return {
        # seq x head_dim, least measured first (a time budget cuts the tail)
        "attention": [attention(2, 8192, 16, 16, 128), attention(2, 4096, 16, 16, 128),
                      attention(2, 8192, 16, 16, 64), attention(2, 2048, 16, 16, 64),
                      attention(2, 4096, 16, 16, 64), attention(2, 2048, 16, 16, 128)],
        "ssd": [ssd(4, 4096, 16, 64, 64, 64), ssd(4, 8192, 16, 64, 128, 64)],
        "selective_scan": [selective_scan(4, 4096, 2048, 16)],
    }
  if which == "quick":
    return {
        "attention": [attention(1, 80, 2, 1, 32)],
        "ssd": [ssd(1, 80, 2, 16, 16, 32)],
        "selective_scan": [selective_scan(1, 40, 48, 8)],
    }
  return {
      "attention": [attention(4, 1024, 16, 16, 64), attention(4, 4096, 16, 4, 128),
                    attention(4, 1024, 16, 4, 128), attention(4, 4096, 16, 16, 64)],
      "ssd": [ssd(4, 1024, 16, 64, 64, 64), ssd(4, 4096, 16, 64, 128, 128), ssd(4, 4096, 16, 64, 64, 64)],
      "selective_scan": [selective_scan(4, 1024, 1024, 16), selective_scan(4, 4096, 2048, 16),
                         selective_scan(4, 4096, 1024, 16)],
  }
