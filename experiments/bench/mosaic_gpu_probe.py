"""Probe (GPU, Hopper): would a Mosaic GPU port of the attention kernels close the gap to cuDNN that Pallas' Triton
lowering leaves at head_dim 128? Times jax's bundled Mosaic GPU flash-attention example
(`jax.experimental.pallas.ops.gpu.attention_mgpu`: TMA, wgmma, warp-specialised; causal forward only, its backward
non-causal and split into dq and dk/dv kernels like ours) next to `flash_attention(impl="pallas")` and cuDNN, in
one process, float16 (the example failed on bfloat16 with jax 0.11.2) or --dtype bfloat16:

  1. causal forward, b2 s8192 h16 d128;
  2. non-causal forward + backward, b2 s4096 h16 d128.

Each row prints its median ms, the ratio cuDNN / row, and the largest relative difference of its results from
cuDNN's. A row that fails prints its error and the probe goes on. The example applies no softmax scale, so its
rows get q * head_dim**-0.5 (the scaling is part of the timed function). Not a library path: the example has no
hooks, masks beyond causal, GQA padding or ragged lengths.

  python experiments/bench/mosaic_gpu_probe.py [--target-s 0.3] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for pallas_kernels

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import _measure as m  # noqa: E402
from pallas_kernels.attention import flash_attention  # noqa: E402

MGPU_FORWARD = [dict(block_q=64, block_kv=128, max_concurrent_steps=2), dict(block_q=64, block_kv=64,
                                                                             max_concurrent_steps=2)]
MGPU_BACKWARD = dict(block_q_dkv=64, block_kv_dkv=64, block_q_dq=64, block_kv_dq=64)


def _impls(causal: bool, backward: bool) -> list[tuple[str, object]]:
  """(name, fn(q, k, v)) of each implementation to time."""
  rows = [("cudnn", lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")),
          ("pallas (Triton)", lambda q, k, v: flash_attention(q, k, v, causal=causal, impl="pallas"))]
  try:
    from jax.experimental.pallas.ops.gpu import attention_mgpu
  except ImportError as e:
    print(f"  attention_mgpu not importable: {e}")
    return rows
  for blocks in MGPU_FORWARD:
    extra = dict(MGPU_BACKWARD, compute_wgs_bwd=1) if backward else {}
    config = attention_mgpu.TuningConfig(causal=causal, **blocks, **extra)
    name = f"mosaic gpu q{blocks['block_q']} kv{blocks['block_kv']}"
    rows.append((name, lambda q, k, v, config=config: attention_mgpu.attention(
        q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype), k, v, config)))
  return rows


def probe(label: str, shape, causal: bool, backward: bool, target_s: float, dtype: str) -> None:
  rng = np.random.default_rng(0)
  q, k, v, dout = (jnp.asarray(rng.standard_normal(shape, np.float32), dtype) for _ in range(4))
  timing = dict(warmup=2, min_reps=5, max_reps=200, target_s=target_s)
  print(f"{label}:", flush=True)
  reference, cudnn_ms = None, None
  for name, fn in _impls(causal, backward):
    try:
      if backward:
        compiled, _, (out, grads) = m.compile_fn(m.forward_backward_fn(fn), (q, k, v, dout))
        results, args = [out, *grads], (q, k, v, dout)
      else:
        compiled, _, out = m.compile_fn(m.forward_fn(fn), (q, k, v))
        results, args = [out], (q, k, v)
      ms = m.time_fn(compiled, [args], **timing)["median"]
    except Exception as e:  # noqa: BLE001  (a probe row, not a crash)
      print(f"  {name:28s} FAIL {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", flush=True)
      continue
    if name == "cudnn":
      reference, cudnn_ms = results, ms
    compared = (f"  cudnn/this {cudnn_ms / ms:5.2f}  max rel diff vs cudnn "
                f"{max(m.rel_err(a, b) for a, b in zip(results, reference)):.1e}" if reference else "")
    print(f"  {name:28s} {ms:8.3f} ms{compared}", flush=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--target-s", type=float, default=0.3, help="time spent per timing loop")
  p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16"), help="the inputs' dtype")
  args = p.parse_args(argv)
  if jax.default_backend() != "gpu":
    raise SystemExit(f"the probe needs a GPU (backend here: {jax.default_backend()})")
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}", flush=True)
  probe("causal forward, b2 s8192 h16 d128", (2, 8192, 16, 128), True, False, args.target_s, args.dtype)
  probe("non-causal forward + backward, b2 s4096 h16 d128", (2, 4096, 16, 128), False, True, args.target_s, args.dtype)
  return 0


if __name__ == "__main__":
  sys.exit(main())
