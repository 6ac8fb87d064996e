"""Plain-jnp attention, differentiated by JAX: the test oracle of the Pallas kernels and of `xla_attention`.

Computes softmax attention in float32 one (batch, head) pair at a time (vmapped), so score/mask hooks see
exactly the same index arrays as inside a kernel block (see `_common.py`). Grouped KV is handled without
repeating k/v: query head h reads kv head h // (heads // kv_heads).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pallas_kernels.attention import _common


def _one_head(q, k, v, head, spec: _common.AttentionSpec):
  """q: (Q, D), k/v: (K, D) float32, head: int32 scalar -> (Q, D) float32."""
  q_len, kv_len = q.shape[0], k.shape[0]
  s = jnp.dot(q, k.T, precision=jax.lax.Precision.HIGHEST)
  q_idx = (jnp.arange(q_len, dtype=jnp.int32) + (kv_len - q_len))[:, None]
  kv_idx = jnp.arange(kv_len, dtype=jnp.int32)[None, :]
  s = _common.transform_scores(s, q_idx, kv_idx, head, spec)
  keep = _common.keep_mask(q_idx, kv_idx, head, spec)
  if keep is not None:
    s = jnp.where(jnp.broadcast_to(keep, s.shape), s, -jnp.inf)
  m = jnp.max(s, axis=-1, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
  p = jnp.exp(s - m)  # masked entries: exp(-inf) = 0 with zero gradient
  denom = jnp.sum(p, axis=-1, keepdims=True)
  out = jnp.dot(p, v, precision=jax.lax.Precision.HIGHEST)
  return out / jnp.where(denom == 0.0, 1.0, denom)  # fully masked row -> zeros


def attention_reference(q, k, v, *, causal=True, sliding_window=None, softcap=None, scale=None,
                        score_mod=None, mask_mod=None):
  """Softmax attention with optional causal / sliding-window / softcap / score and mask hooks.

  Args:
    q: (batch, q_len, heads, head_dim) floating array.
    k, v: (batch, kv_len, kv_heads, head_dim), heads % kv_heads == 0.
    causal: keep keys with kv_idx <= q_idx (q_idx = row + kv_len - q_len, bottom-right aligned).
    sliding_window: int w, additionally keep q_idx - kv_idx < w.
    softcap: float c, scores become c * tanh(s / c) (after scaling, before score_mod).
    scale: multiplier of q.k; default head_dim ** -0.5.
    score_mod: fn(s, q_idx, kv_idx, head) -> s, elementwise on float32 scores (see `_common.py`).
    mask_mod: fn(q_idx, kv_idx, head) -> bool, True = keep; ANDed with the other masks.

  Returns:
    (batch, q_len, heads, head_dim) in q.dtype; rows with every key masked are zero.
  """
  _common.check_inputs(q, k, v)
  spec = _common.make_spec(q, causal=causal, sliding_window=sliding_window, softcap=softcap, scale=scale,
                           score_mod=score_mod, mask_mod=mask_mod)
  return _attention(q, k, v, spec)


@functools.partial(jax.jit, static_argnames=("spec",))
def _attention(q, k, v, spec: _common.AttentionSpec):
  """Jitted body of `attention_reference` (eager op-by-op dispatch of the vmapped code is slow)."""
  batch, q_len, heads, head_dim = q.shape
  kv_heads = k.shape[2]
  groups = heads // kv_heads
  # (B, KH, G, Q, D) queries; (B, KH, K, D) keys and values.
  qf = q.astype(jnp.float32).reshape(batch, q_len, kv_heads, groups, head_dim).transpose(0, 2, 3, 1, 4)
  kf = k.astype(jnp.float32).transpose(0, 2, 1, 3)
  vf = v.astype(jnp.float32).transpose(0, 2, 1, 3)
  head_ids = jnp.arange(heads, dtype=jnp.int32).reshape(kv_heads, groups)

  fn = lambda q_, k_, v_, h_: _one_head(q_, k_, v_, h_, spec)
  fn = jax.vmap(fn, in_axes=(0, None, None, 0))  # query heads of one group share k/v
  fn = jax.vmap(fn, in_axes=(0, 0, 0, 0))  # kv heads
  fn = jax.vmap(fn, in_axes=(0, 0, 0, None))  # batch
  out = fn(qf, kf, vf, head_ids)  # (B, KH, G, Q, D)
  out = out.transpose(0, 3, 1, 2, 4).reshape(batch, q_len, heads, head_dim)
  return out.astype(q.dtype)
