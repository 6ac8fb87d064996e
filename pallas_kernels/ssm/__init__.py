"""State-space scans: Mamba-2 SSD (`ssd`) and the Mamba-1 selective scan (`selective_scan`).

Each has a plain-jnp reference (CPU path and test oracle), Pallas kernels with hand-written backward passes, and
a raw Triton forward kernel (impl="triton", CUDA GPU; the backward is the Pallas one). `impl` picks one (see
`pallas_kernels._dispatch`).
"""

from pallas_kernels.ssm.api import selective_scan, ssd
from pallas_kernels.ssm.selective_scan_reference import selective_scan_reference
from pallas_kernels.ssm.ssd_reference import ssd_reference

__all__ = ["ssd", "ssd_reference", "selective_scan", "selective_scan_reference"]
