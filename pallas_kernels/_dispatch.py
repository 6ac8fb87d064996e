"""Choosing a kernel implementation: one `impl` string, resolved the same way by every entry point.

`impl` values:
  "auto"             "pallas" on TPU, the measured faster one on GPU (`AUTO_ON_GPU`), and "xla" elsewhere (CPU).
  "xla"              plain jnp compiled by XLA: the reference implementation differentiated by JAX (scans), or a
                     formulation with a hand-written backward tested against it (attention: `xla_attention`).
  "pallas"           the Pallas kernel compiled for the current backend (Mosaic on TPU, Triton on GPU).
  "pallas_interpret" the Pallas kernel run by the Pallas interpreter (any backend; used in CPU tests).
  "triton"           a raw Triton kernel through jax_triton (GPU only, `[gpu]` extra; scans only).
  "cudnn"            cuDNN's fused attention through `jax.nn.dot_product_attention` (CUDA GPU only; attention
                     only, without softcap or score/mask hooks).
  "mosaic"           attention only: the Hopper (sm_90) kernels written in Pallas Mosaic GPU (TMA, wgmma, warp
                     specialisation), float16 / bfloat16, head_dim <= 128, every option and hook
                     (`pallas_kernels.attention.mosaic_attention`).
"""

from __future__ import annotations

import dataclasses

import jax

IMPLS = ("auto", "xla", "pallas", "pallas_interpret", "triton", "cudnn", "mosaic")


GPU_BACKENDS = ("gpu", "cuda", "rocm")

# What "auto" runs on a GPU, per kernel: the implementation whose forward+backward measured faster on an H200 in
# bfloat16 (experiments/bench/kernels.py via gpu_check.sh; experiments/bench/RESULTS.md, 2026-11-27 sessions).
# Change an entry when a measurement says so.
AUTO_ON_GPU = {"flash_attention": "pallas", "selective_scan": "pallas", "ssd": "pallas"}
# Where float32 inputs measured otherwise: the SSD kernel's float32 matmuls (3-pass TF32) spill registers, and its
# forward+backward is slower than XLA's (RESULTS.md, "chunk-parallel SSD backward"). float32 attention stays on
# Pallas: faster than XLA at every shape measured (RESULTS.md, seventh session).
AUTO_ON_GPU_FLOAT32 = {"ssd": "xla"}


@dataclasses.dataclass(frozen=True)
class MeasuredChoice:
  """What impl="auto" runs for one kernel in one shape range on one GPU generation, because it measured fastest there.

  Applies to 16-bit inputs with `min_head_dim <= head_dim <= max_head_dim` and `min_seq <= seq < max_seq` (attention:
  seq is kv_len) on a GPU whose compute capability's major version is `capability_major`. `source` names the
  RESULTS.md section with the measurement. Rows come from `experiments/bench/auto_choices.py`, which keeps the
  default wherever the measured speed-up's 95% interval holds 1.
  """
  kernel: str
  capability_major: int
  min_head_dim: int
  max_head_dim: int
  min_seq: int
  max_seq: int
  impl: str
  source: str

  def matches(self, kernel: str, capability_major: int | None, head_dim: int, seq: int) -> bool:
    return (self.kernel == kernel and self.capability_major == capability_major
            and self.min_head_dim <= head_dim <= self.max_head_dim and self.min_seq <= seq < self.max_seq)


# None measured yet: the Mosaic GPU attention (impl="mosaic") has not run on a GPU (issue 23). A row goes here only
# from a measurement (`auto_choices.py` prints them), with its RESULTS.md section.
MEASURED_CHOICES: tuple[MeasuredChoice, ...] = ()


def measured_choice(kernel: str, *, capability_major: int | None, head_dim: int, seq: int) -> str | None:
  """The impl a `MEASURED_CHOICES` row picks for 16-bit inputs of this shape on this GPU generation, or None."""
  return next((row.impl for row in MEASURED_CHOICES if row.matches(kernel, capability_major, head_dim, seq)), None)


def resolve_impl(impl: str, *, kernel: str | None = None, available: tuple[str, ...] = IMPLS,
                 backend: str | None = None, float32: bool = False) -> str:
  """Returns the concrete implementation for `impl` on `backend` (default: jax.default_backend()).

  "auto" is "pallas" on TPU, on GPU `AUTO_ON_GPU[kernel]` ("pallas" for an unnamed kernel) or, when `float32`
  (the kernel would compute in float32), `AUTO_ON_GPU_FLOAT32[kernel]` where listed, and "xla" on CPU.
  Raises ValueError for an unknown name or one this kernel does not offer, naming the choices.
  """
  if impl not in IMPLS:
    raise ValueError(f"unknown impl {impl!r}; choose one of {', '.join(IMPLS)}")
  if impl == "auto":
    backend = backend or jax.default_backend()
    if backend in GPU_BACKENDS:
      impl = (float32 and AUTO_ON_GPU_FLOAT32.get(kernel)) or AUTO_ON_GPU.get(kernel, "pallas")
    else:
      impl = "pallas" if backend == "tpu" and "pallas" in available else "xla"
  if impl not in available:
    raise ValueError(f"impl {impl!r} is not offered by this kernel; choose one of {', '.join(available)}")
  if impl in ("cudnn", "mosaic") and (backend or jax.default_backend()) not in GPU_BACKENDS:
    raise ValueError(f"impl {impl!r} needs a CUDA GPU; this backend is {backend or jax.default_backend()}")
  return impl


def gpu_compiler_params(**kwargs):
  """Pallas compiler parameters for the Triton GPU lowering (without them jax may pick Mosaic GPU)."""
  from jax.experimental.pallas import triton as pltriton
  return pltriton.CompilerParams(**kwargs)


def tpu_compiler_params(**kwargs):
  """Pallas compiler parameters for the Mosaic TPU lowering."""
  from jax.experimental.pallas import tpu as pltpu
  return pltpu.CompilerParams(**kwargs)
