"""In-kernel helpers shared by the forward and backward Pallas kernels: block scores with hooks and masks,
and the range of kv (or q) blocks a q (or kv) block can see under causal / sliding-window masking."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from pallas_kernels.attention import _common
from pallas_kernels.attention.tiling import Tiling

MASK_VALUE = -1e30  # finite stand-in for -inf in the running max
FULLY_MASKED_LSE = 1e30  # lse of a row with no visible key: exp(s - lse) == 0


def _precision(a):
  # float32 tiles ask for full precision (Triton's default for f32 is TF32); 16-bit tiles use the default.
  return lax.Precision.HIGHEST if a.dtype == jnp.float32 else None


def dot_nt(a, b):
  """a: (M, D), b: (N, D) -> a @ b.T in float32."""
  return lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=_precision(a),
                         preferred_element_type=jnp.float32)


def dot_nn(a, b):
  """a: (M, K), b: (K, N) -> a @ b in float32."""
  return lax.dot_general(a, b, (((1,), (0,)), ((), ())), precision=_precision(a),
                         preferred_element_type=jnp.float32)


def block_scores(s_raw, q_start, kv_start, head, spec: _common.AttentionSpec, t: Tiling, *, with_grad=False):
  """Logits and keep-mask of one (block_q, block_k) tile.

  Args:
    s_raw: float32 (block_q, block_k) raw q.k products.
    q_start, kv_start: int32 scalars, first padded row / key of the tile.
    head: int32 scalar query head.
    with_grad: also return d logits / d s_raw (None means the constant `spec.scale`).

  Returns:
    (logits, keep[, dlogits]); keep is a bool (block_q, block_k) array or None when nothing is masked.
  """
  row = q_start + lax.broadcasted_iota(jnp.int32, (t.block_q, 1), 0)
  kv_idx = kv_start + lax.broadcasted_iota(jnp.int32, (1, t.block_k), 1)
  q_idx = row + (t.kv_len - t.q_len)
  if with_grad:
    logits, dlogits = _common.transform_scores_and_grad(s_raw, q_idx, kv_idx, head, spec)
  else:
    logits = _common.transform_scores(s_raw, q_idx, kv_idx, head, spec)
  keep = _common.keep_mask(q_idx, kv_idx, head, spec)
  if t.kv_pad != t.kv_len:
    keep = kv_idx < t.kv_len if keep is None else jnp.logical_and(keep, kv_idx < t.kv_len)
  if t.q_pad != t.q_len:
    keep = row < t.q_len if keep is None else jnp.logical_and(keep, row < t.q_len)
  if keep is not None:
    keep = jnp.broadcast_to(keep, s_raw.shape)
  return (logits, keep, dlogits) if with_grad else (logits, keep)


def _div(a, b: int):
  """a // b for int32 a >= 0 and static b > 0 (lax.div: jnp's floor division lowers through `sign`, whose
  Mosaic rule queries the TPU generation and so cannot be cross-lowered from a CPU host)."""
  return lax.div(a, jnp.int32(b))


def _first_block(x, block: int):
  """max(floor(x / block), 0) for int32 x of either sign."""
  return _div(jnp.maximum(x, 0), block)


def _end_block(x, block: int):
  """max(floor(x / block) + 1, 0) for int32 x of either sign: one past the block holding x."""
  return _div(jnp.maximum(x + block, 0), block)


def kv_block_range(q_block, spec: _common.AttentionSpec, t: Tiling):
  """[lo, hi) of kv blocks that can hold a visible key for q block `q_block` (int32 scalars)."""
  offset = t.kv_len - t.q_len
  lo, hi = jnp.int32(0), jnp.int32(t.num_kv_blocks)
  if spec.causal:  # keys up to the last query position
    hi = jnp.minimum(_end_block((q_block + 1) * t.block_q - 1 + offset, t.block_k), hi)
  if spec.sliding_window is not None:  # keys after first query position - window
    lo = jnp.minimum(_first_block(q_block * t.block_q + offset - spec.sliding_window + 1, t.block_k), hi)
  return lo, jnp.maximum(lo, hi)


def q_block_range(kv_block, spec: _common.AttentionSpec, t: Tiling):
  """[lo, hi) of q blocks that can see some key of kv block `kv_block` (int32 scalars)."""
  offset = t.kv_len - t.q_len
  lo, hi = jnp.int32(0), jnp.int32(t.num_q_blocks)
  if spec.causal:  # rows whose position reaches the first key
    lo = jnp.minimum(_first_block(kv_block * t.block_k - offset, t.block_q), hi)
  if spec.sliding_window is not None:  # rows whose position - last key < window
    last_row = (kv_block + 1) * t.block_k - 1 + spec.sliding_window - 1 - offset
    hi = jnp.minimum(_end_block(last_row, t.block_q), hi)
  return lo, jnp.maximum(lo, hi)


def kv_head_of(head, t: Tiling):
  """The kv head read by query head `head` (int32 scalar), for BlockSpec index maps."""
  return _div(head, t.groups)
