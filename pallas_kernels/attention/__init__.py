"""Flash attention with score/mask hooks: `flash_attention` (dispatching entry point) and
`attention_reference` (plain jnp, the CPU path and test oracle)."""

from pallas_kernels.attention.api import flash_attention
from pallas_kernels.attention.reference import attention_reference
from pallas_kernels.attention.tiling import BlockSizes, KernelBlocks

__all__ = ["flash_attention", "attention_reference", "BlockSizes", "KernelBlocks"]
