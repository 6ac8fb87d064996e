"""Flax NNX layers: the primitives (attention, MLP, Mamba-2), norms, RoPE, and the kernel seam."""

from aira_jax.layers.attention import AttentionLayer
from aira_jax.layers.mamba2 import Mamba2Layer
from aira_jax.layers.mlp import MLPLayer
from aira_jax.layers.norm import GatedRMSNorm, RMSNorm

__all__ = ["AttentionLayer", "MLPLayer", "Mamba2Layer", "RMSNorm", "GatedRMSNorm"]
