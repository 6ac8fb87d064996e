"""In-kernel helpers shared by the forward and backward Pallas kernels: tile scores (base-2 logits) with hooks
and masks, for q-major or transposed (k-major) tiles; the range of kv (or q) blocks a q (or kv) block can see
under causal / sliding-window masking, its fully visible sub-range, and the loop that skips mask arithmetic
there."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import lax

from pallas_kernels._precision import kernel_dot_precision
from pallas_kernels.attention import _common
from pallas_kernels.attention.tiling import Tiling

MASK_VALUE = -1e30  # finite stand-in for -inf in the running max
FULLY_MASKED_LSE = 1e30  # lse of a row with no visible key: exp2(s - lse) == 0
# The kernels keep logits and the log-sum-exp in base 2 (logits * log2(e)) and exponentiate with exp2: on GPU
# Pallas lowers jnp.exp to libdevice's accurate expf (extra arithmetic around the ex2 instruction on every score)
# and jnp.exp2 to exp2f; without hooks the log2(e) folds into the scale's multiply.
LOG2E = 1.4426950408889634


def _dot(a, b, contracting, t: Tiling):
  precision = kernel_dot_precision(a.dtype, compiled_for_gpu=t.backend == "gpu")
  return lax.dot_general(a, b, (contracting, ((), ())), precision=precision, preferred_element_type=jnp.float32)


def dot_nt(a, b, t: Tiling):
  """a: (M, D), b: (N, D) -> a @ b.T in float32 (precision: `kernel_dot_precision` for t's backend)."""
  return _dot(a, b, ((1,), (1,)), t)


def dot_nn(a, b, t: Tiling):
  """a: (M, K), b: (K, N) -> a @ b in float32."""
  return _dot(a, b, ((1,), (0,)), t)


def dot_tn(a, b, t: Tiling):
  """a: (K, M), b: (K, N) -> a.T @ b in float32."""
  return _dot(a, b, ((0,), (0,)), t)


def _transposed_hooks(spec: _common.AttentionSpec) -> _common.AttentionSpec:
  """The spec with its hooks applied to transposed tiles: they still see (Q, K) scores, (Q, 1) q_idx and
  (1, K) kv_idx, as documented, and their results are transposed back (the transposes cost only with hooks)."""
  score_mod, mask_mod = spec.score_mod, spec.mask_mod
  return dataclasses.replace(
      spec,
      score_mod=None if score_mod is None else lambda s, qi, ki, h: score_mod(s.T, qi.T, ki.T, h).T,
      mask_mod=None if mask_mod is None else lambda qi, ki, h: jnp.asarray(mask_mod(qi.T, ki.T, h)).T)


def block_scores(s_raw, q_start, kv_start, head, spec: _common.AttentionSpec, t: Tiling, *, with_grad=False,
                 masked=True, transposed=False):
  """Base-2 logits (logits * log2(e)) and keep-mask of one (block_q, block_k) tile, or of its transpose.

  Args:
    s_raw: float32 (block_q, block_k) raw q.k products; (block_k, block_q) k.q products if `transposed`.
    q_start, kv_start: int32 scalars, first padded row / key of the tile.
    head: int32 scalar query head.
    with_grad: also return d logits / d s_raw of the natural logits (None means the constant `spec.scale`).
    masked: False for a tile the caller knows is fully visible (`unmasked_*_block_range`): no keep-mask.

  Returns:
    (logits, keep[, dlogits]) shaped like s_raw; keep is a bool array or None when nothing is masked.
  """
  q_axis, kv_axis = (1, 0) if transposed else (0, 1)
  q_shape, kv_shape = ((1, t.block_q), (t.block_k, 1)) if transposed else ((t.block_q, 1), (1, t.block_k))
  row = q_start + lax.broadcasted_iota(jnp.int32, q_shape, q_axis)
  kv_idx = kv_start + lax.broadcasted_iota(jnp.int32, kv_shape, kv_axis)
  out = logits_and_keep(s_raw, row, kv_idx, head, _transposed_hooks(spec) if transposed else spec, t,
                        with_grad=with_grad, masked=masked)
  if out[1] is not None:
    out = (out[0], jnp.broadcast_to(out[1], s_raw.shape), *out[2:])
  return out


def logits_and_keep(s_raw, row, kv_idx, head, spec: _common.AttentionSpec, t: Tiling, *, with_grad, masked):
  """`block_scores` from the tile's padded row and key indices (int32 arrays broadcastable against s_raw, which
  the Mosaic GPU kernels pass as full tiles): base-2 logits, the keep-mask (padding included; not broadcast) and
  with `with_grad` d logits / d s_raw."""
  q_idx = row + (t.kv_len - t.q_len)
  dlogits = None
  if spec.softcap is None and spec.score_mod is None:
    logits = s_raw * (spec.scale * LOG2E)
  elif with_grad:
    logits, dlogits = _common.transform_scores_and_grad(s_raw, q_idx, kv_idx, head, spec)
    logits = logits * LOG2E
  else:
    logits = _common.transform_scores(s_raw, q_idx, kv_idx, head, spec) * LOG2E
  keep = None
  if masked:
    keep = _common.keep_mask(q_idx, kv_idx, head, spec)
    if t.kv_pad != t.kv_len:
      keep = kv_idx < t.kv_len if keep is None else jnp.logical_and(keep, kv_idx < t.kv_len)
    if t.q_pad != t.q_len:
      keep = row < t.q_len if keep is None else jnp.logical_and(keep, row < t.q_len)
  return (logits, keep, dlogits) if with_grad else (logits, keep)


def probs_and_dscores(logits, keep, dlogits, lse, dp, delta, scale: float):
  """(p, ds) of one tile in the backward: p = exp2(logits - lse) (base 2, zero where not kept) and ds = d loss /
  d raw score = p * (dp - delta) * d logits / d raw score (`dlogits`, or the constant `scale` when None). lse and
  delta broadcast against the tile (columns, rows, or already full tiles)."""
  p = jnp.exp2(logits - lse)
  if keep is not None:
    p = jnp.where(keep, p, 0.0)
  ds = p * (dp - delta)
  if dlogits is None:
    return p, ds * scale
  ds = ds * dlogits
  if keep is not None:  # a hook's derivative may be non-finite where the key is masked
    ds = jnp.where(keep, ds, 0.0)
  return p, ds


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


def unmasked_kv_block_range(q_block, lo, hi, spec: _common.AttentionSpec, t: Tiling):
  """[flo, fhi) within [lo, hi): the kv blocks whose tile with q block `q_block` is entirely visible (no
  causal / window / padding mask applies; a mask_mod is `loop_blocks`' concern)."""
  offset = t.kv_len - t.q_len
  flo, fhi = lo, jnp.minimum(hi, t.kv_len // t.block_k)  # kv blocks without padding
  if spec.causal:  # the block's last key <= the block's first query position
    fhi = jnp.minimum(fhi, _first_block(q_block * t.block_q + offset + 1, t.block_k))
  if spec.sliding_window is not None:  # last query position - the block's first key < window
    flo = jnp.maximum(flo, _end_block((q_block + 1) * t.block_q - 1 + offset - spec.sliding_window, t.block_k))
  fhi = jnp.where((q_block + 1) * t.block_q <= t.q_len, fhi, flo)  # a q block with padding rows: masked
  flo = jnp.minimum(flo, hi)
  return flo, jnp.clip(fhi, flo, hi)


def unmasked_q_block_range(kv_block, lo, hi, spec: _common.AttentionSpec, t: Tiling):
  """[flo, fhi) within [lo, hi): the q blocks whose tile with kv block `kv_block` is entirely visible."""
  offset = t.kv_len - t.q_len
  flo, fhi = lo, jnp.minimum(hi, t.q_len // t.block_q)  # q blocks without padding
  if spec.causal:  # the block's first query position >= the block's last key
    flo = jnp.maximum(flo, _first_block((kv_block + 1) * t.block_k - 1 - offset + t.block_q - 1, t.block_q))
  if spec.sliding_window is not None:  # the block's last query position - first key < window
    fhi = jnp.minimum(fhi, _first_block(spec.sliding_window + kv_block * t.block_k - offset, t.block_q))
  fhi = jnp.where((kv_block + 1) * t.block_k <= t.kv_len, fhi, flo)  # a kv block with padding keys: masked
  flo = jnp.minimum(flo, hi)
  return flo, jnp.clip(fhi, flo, hi)


def loop_blocks(lo, hi, unmasked, make_body, carry, spec: _common.AttentionSpec, t: Tiling):
  """Runs `make_body(masked)(block, carry)` over the blocks [lo, hi): the fully visible sub-range `unmasked`
  = (flo, fhi) without any mask arithmetic, the blocks before and after it masked. Statically one loop when
  nothing can be masked, or when a mask_mod may mask anything."""
  if not (spec.has_mask or t.q_pad != t.q_len or t.kv_pad != t.kv_len):
    return lax.fori_loop(lo, hi, make_body(False), carry)
  if spec.mask_mod is not None:
    return lax.fori_loop(lo, hi, make_body(True), carry)
  flo, fhi = unmasked
  carry = lax.fori_loop(lo, flo, make_body(True), carry)
  carry = lax.fori_loop(flo, fhi, make_body(False), carry)
  return lax.fori_loop(fhi, hi, make_body(True), carry)


def kv_head_of(head, t: Tiling):
  """The kv head read by query head `head` (int32 scalar), for BlockSpec index maps."""
  return _div(head, t.groups)
