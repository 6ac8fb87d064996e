"""`ModelConfig`: the widths and options shared by every layer of a model, validated on construction.

The layout (which primitive each layer holds) is separate: one config serves every layout of a search. A top-level
module because both `aira_jax.layers` (each layer reads its widths) and `aira_jax.models` (which builds models from
layers, and re-exports `ModelConfig`) need it; inside either package it would make the two import each other.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

from pallas_kernels.attention.api import ATTENTION_IMPLS, SIXTEEN_BIT_IMPLS
from pallas_kernels.ssm.api import SSD_IMPLS

MLPActivation = Literal["swiglu", "relu2"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Model hyper-parameters. Frozen; derive variants with `dataclasses.replace` or `.replace(...)`.

  Widths:
    vocab_size, d_model: token vocabulary and residual width.
    num_heads, num_kv_heads, head_dim: attention heads; head_dim defaults to d_model // num_heads and
      num_kv_heads to num_heads (grouped KV when smaller; it must divide num_heads).
    ffn_dim: hidden width of the MLP primitive.
  Attention (A): rope_theta, qk_norm (RMSNorm on q and k per head), sliding_window (None = full causal),
    attention_softcap (tanh cap on scores, None = off).
  MLP (M): mlp_activation "swiglu" (gate, up, down) or "relu2" (up, down with relu(x)^2).
  Mamba-2 (S): ssm_expand (inner width = ssm_expand * d_model), ssm_head_dim, ssm_state_dim, ssm_groups
    (B/C groups; must divide the SSM heads), ssm_conv_width (causal depthwise conv), ssm_chunk_size (SSD chunk),
    ssm_dt_min / ssm_dt_max (range of the initial step size).
  Model: tie_embeddings (output head = embedding transposed), logit_softcap (None = off), norm_eps,
    init_std (normal init of projections and embeddings), max_seq_len (documentation and positional limits).
  Numerics: param_dtype (stored), dtype (computation; "bfloat16" for mixed precision).
  Memory: remat (recompute each layer's activations in the backward pass instead of storing them).
  Kernels: attention_impl / scan_impl are passed to `pallas_kernels` ("auto", "xla", "pallas", ...; attention also
    "cudnn" and "mosaic", which need dtype bfloat16 or float16; whether the device has them is checked where the
    model runs).
  """

  vocab_size: int = 256
  d_model: int = 128
  num_heads: int = 4
  num_kv_heads: int | None = None
  head_dim: int | None = None
  ffn_dim: int = 384
  mlp_activation: MLPActivation = "swiglu"
  rope_theta: float = 10_000.0
  qk_norm: bool = False
  sliding_window: int | None = None
  attention_softcap: float | None = None
  ssm_expand: int = 2
  ssm_head_dim: int = 32
  ssm_state_dim: int = 16
  ssm_groups: int = 1
  ssm_conv_width: int = 4
  ssm_chunk_size: int = 64
  ssm_dt_min: float = 1e-3
  ssm_dt_max: float = 1e-1
  tie_embeddings: bool = True
  logit_softcap: float | None = None
  norm_eps: float = 1e-5
  init_std: float = 0.02
  max_seq_len: int = 2048
  param_dtype: str = "float32"
  dtype: str = "float32"
  remat: bool = False
  attention_impl: str = "auto"
  scan_impl: str = "auto"

  def __post_init__(self):
    def need(condition: bool, message: str):
      if not condition:
        raise ValueError(f"invalid ModelConfig: {message}")

    for name in ("vocab_size", "d_model", "num_heads", "ffn_dim", "ssm_expand", "ssm_head_dim", "ssm_state_dim",
                 "ssm_groups", "ssm_conv_width", "ssm_chunk_size", "max_seq_len"):
      value = getattr(self, name)
      need(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
    if self.head_dim is None:
      need(self.d_model % self.num_heads == 0,
           f"num_heads={self.num_heads} does not divide d_model={self.d_model}; choose num_heads among "
           f"{_divisors(self.d_model)} or set head_dim explicitly")
    else:
      need(self.head_dim >= 1, f"head_dim must be positive, got {self.head_dim}")
    need(self.resolved_head_dim % 2 == 0, f"head_dim={self.resolved_head_dim} must be even for RoPE")
    kv = self.resolved_kv_heads
    need(kv >= 1 and self.num_heads % kv == 0,
         f"num_kv_heads={kv} does not divide num_heads={self.num_heads}; choose among {_divisors(self.num_heads)}")
    need(self.ssm_inner % self.ssm_head_dim == 0,
         f"ssm_head_dim={self.ssm_head_dim} does not divide the SSM inner width ssm_expand*d_model="
         f"{self.ssm_inner}; choose among {_divisors(self.ssm_inner)}")
    need(self.ssm_heads % self.ssm_groups == 0,
         f"ssm_groups={self.ssm_groups} does not divide the SSM heads ({self.ssm_heads}); choose among "
         f"{_divisors(self.ssm_heads)}")
    need(0 < self.ssm_dt_min <= self.ssm_dt_max, f"need 0 < ssm_dt_min <= ssm_dt_max, got "
         f"{self.ssm_dt_min}, {self.ssm_dt_max}")
    need(self.mlp_activation in ("swiglu", "relu2"),
         f"mlp_activation must be 'swiglu' or 'relu2', got {self.mlp_activation!r}")
    need(self.sliding_window is None or self.sliding_window >= 1,
         f"sliding_window must be None or a positive integer, got {self.sliding_window!r}")
    for name in ("attention_softcap", "logit_softcap"):
      value = getattr(self, name)
      need(value is None or value > 0, f"{name} must be None or positive, got {value!r}")
    for name in ("param_dtype", "dtype"):
      value = getattr(self, name)
      need(value in ("float32", "bfloat16", "float16"), f"{name} must be float32, bfloat16 or float16, got {value!r}")
    for name, choices in (("attention_impl", ATTENTION_IMPLS), ("scan_impl", SSD_IMPLS)):
      value = getattr(self, name)
      need(value in choices, f"{name} must be one of {', '.join(choices)}; got {value!r}")
    need(self.attention_impl not in SIXTEEN_BIT_IMPLS or self.dtype != "float32",
         f"attention_impl={self.attention_impl!r} computes in 16 bits: set dtype to bfloat16 or float16 (got float32)")

  # Derived widths.
  @property
  def resolved_head_dim(self) -> int:
    return self.head_dim if self.head_dim is not None else self.d_model // self.num_heads

  @property
  def resolved_kv_heads(self) -> int:
    return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

  @property
  def ssm_inner(self) -> int:
    return self.ssm_expand * self.d_model

  @property
  def ssm_heads(self) -> int:
    return self.ssm_inner // self.ssm_head_dim

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def stored_dtype(self):
    return jnp.dtype(self.param_dtype)

  def replace(self, **changes) -> ModelConfig:
    """A copy with `changes` applied (validated again)."""
    return dataclasses.replace(self, **changes)


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]
