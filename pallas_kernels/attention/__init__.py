"""Flash attention with score/mask hooks: `flash_attention` (dispatching entry point), `xla_attention` (plain
jnp with a hand-written backward: impl="xla", the CPU path), `attention_reference` (plain jnp differentiated by
JAX: the test oracle), `MosaicBlocks` (block sizes of impl="mosaic"), and `autotune` (per-kernel block sizes for a
problem on this device)."""

from pallas_kernels.attention.api import flash_attention
from pallas_kernels.attention.reference import attention_reference
from pallas_kernels.attention.xla_attention import xla_attention
from pallas_kernels.attention.tiling import BlockSizes, KernelBlocks
from pallas_kernels.attention.autotuning import Trial, autotune
from pallas_kernels.attention.mosaic_blocks import MosaicBlocks

__all__ = ["flash_attention", "xla_attention", "attention_reference", "autotune", "BlockSizes", "KernelBlocks",
           "MosaicBlocks", "Trial"]
