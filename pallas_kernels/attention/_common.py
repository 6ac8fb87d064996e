"""Attention semantics shared by the reference and the Pallas kernels: the option bundle, input checks,
score transform (scale -> softcap -> score_mod) and the keep-mask (causal, sliding window, mask_mod).

Index conventions seen by the hooks (the same in the reference and inside a kernel block):
  s       float32 (Q, K) scores of one (batch, head) pair (a block of them inside a kernel)
  q_idx   int32 (Q, 1) query positions, bottom-right aligned: row i has position i + (kv_len - q_len)
  kv_idx  int32 (1, K) key positions
  head    int32 scalar, the query head index
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

ScoreMod = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
MaskMod = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class AttentionSpec:
  """Static attention options (hashable, so it can be a `custom_vjp` non-differentiable argument)."""
  causal: bool
  sliding_window: Optional[int]
  softcap: Optional[float]
  scale: float
  score_mod: Optional[ScoreMod]
  mask_mod: Optional[MaskMod]

  @property
  def has_mask(self) -> bool:
    return self.causal or self.sliding_window is not None or self.mask_mod is not None


def check_inputs(q, k, v) -> None:
  """Raises ValueError unless q: (B, Q, H, D), k/v: (B, K, KH, D) with H % KH == 0."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if x.ndim != 4:
      raise ValueError(f"{name} must have rank 4 (batch, seq_len, heads, head_dim); got shape {x.shape}")
  if k.shape != v.shape:
    raise ValueError(f"k and v must have the same shape (batch, kv_len, kv_heads, head_dim); got {k.shape} "
                     f"and {v.shape}")
  if q.shape[0] != k.shape[0]:
    raise ValueError(f"q and k must have the same batch size; got {q.shape[0]} and {k.shape[0]}")
  if q.shape[3] != k.shape[3]:
    raise ValueError(f"q and k/v must have the same head_dim; got {q.shape[3]} and {k.shape[3]}")
  if q.shape[2] % k.shape[2] != 0:
    raise ValueError(f"query heads ({q.shape[2]}) must be a multiple of kv heads ({k.shape[2]}); change "
                     "num_heads or num_kv_heads")
  for name, x in (("q", q), ("k", k), ("v", v)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be a floating dtype; got {x.dtype}")


def make_spec(q, *, causal, sliding_window, softcap, scale, score_mod, mask_mod) -> AttentionSpec:
  """Validates the options and fills in the default scale head_dim ** -0.5."""
  if sliding_window is not None and (int(sliding_window) != sliding_window or sliding_window < 1):
    raise ValueError(f"sliding_window must be a positive int or None; got {sliding_window!r}")
  if softcap is not None and not softcap > 0:
    raise ValueError(f"softcap must be a positive float or None; got {softcap!r}")
  for name, fn in (("score_mod", score_mod), ("mask_mod", mask_mod)):
    if fn is not None and not callable(fn):
      raise ValueError(f"{name} must be a callable or None; got {fn!r}")
  if scale is None:
    scale = q.shape[-1] ** -0.5
  return AttentionSpec(
      causal=bool(causal),
      sliding_window=None if sliding_window is None else int(sliding_window),
      softcap=None if softcap is None else float(softcap),
      scale=float(scale),
      score_mod=score_mod,
      mask_mod=mask_mod)


def transform_scores(s, q_idx, kv_idx, head, spec: AttentionSpec):
  """Maps raw q.k dot products (float32) to logits: scale, then softcap, then score_mod."""
  s = s * spec.scale
  if spec.softcap is not None:
    s = spec.softcap * jnp.tanh(s / spec.softcap)
  if spec.score_mod is not None:
    s = spec.score_mod(s, q_idx, kv_idx, head).astype(jnp.float32)
  return s


def transform_scores_and_grad(s, q_idx, kv_idx, head, spec: AttentionSpec):
  """Returns (logits, d logits / d raw score), elementwise; used by the backward kernels."""
  if spec.softcap is None and spec.score_mod is None:
    return s * spec.scale, None
  return jax.jvp(lambda x: transform_scores(x, q_idx, kv_idx, head, spec), (s,), (jnp.ones_like(s),))


def keep_mask(q_idx, kv_idx, head, spec: AttentionSpec):
  """Bool mask (True = keep) broadcastable to (Q, K), or None when nothing is masked."""
  keep = None

  def conj(a, b):
    return b if a is None else jnp.logical_and(a, b)

  if spec.causal:
    keep = conj(keep, kv_idx <= q_idx)
  if spec.sliding_window is not None:
    keep = conj(keep, q_idx - kv_idx < spec.sliding_window)
  if spec.mask_mod is not None:
    keep = conj(keep, spec.mask_mod(q_idx, kv_idx, head).astype(jnp.bool_))
  return keep
