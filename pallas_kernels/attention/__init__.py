"""Flash attention with score/mask hooks: `flash_attention` (dispatching entry point), `attention_reference`
(plain jnp, the CPU path and test oracle), and `autotune` (per-kernel block sizes for a problem on this device)."""

from pallas_kernels.attention.api import flash_attention
from pallas_kernels.attention.reference import attention_reference
from pallas_kernels.attention.tiling import BlockSizes, KernelBlocks
from pallas_kernels.attention.autotuning import Trial, autotune

__all__ = ["flash_attention", "attention_reference", "autotune", "BlockSizes", "KernelBlocks", "Trial"]
