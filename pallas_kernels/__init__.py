"""Stand-alone JAX kernels (needs only jax): flash attention with score/mask hooks, the Mamba-1 selective
scan and the Mamba-2 SSD scan.

Each kernel has a plain-jnp reference (the test oracle and, for the scans, the CPU path; attention's CPU path is
`xla_attention`, plain jnp with a hand-written backward), a Pallas kernel for TPU (Mosaic) and
GPU (Triton), a `custom_vjp` so it trains, and one entry point whose `impl` argument picks the implementation
("auto" | "xla" | "pallas" | "pallas_interpret" | "triton"; see `_dispatch.py`).
"""

from pallas_kernels._dispatch import IMPLS, resolve_impl
from pallas_kernels.attention import attention_reference, flash_attention, xla_attention
from pallas_kernels.ssm import selective_scan, selective_scan_reference, ssd, ssd_reference

__all__ = [
    "IMPLS",
    "resolve_impl",
    "flash_attention",
    "xla_attention",
    "attention_reference",
    "ssd",
    "ssd_reference",
    "selective_scan",
    "selective_scan_reference",
]
