"""Validation bits per byte (val_bpb), the tokenizer-independent metric of the text task.

As autoresearch defines it:

  val_bpb = sum of per-token cross-entropy in nats over the scored targets
            / (ln 2 * sum of the UTF-8 byte lengths of those targets)

A target is scored when it is not IGNORE (padding) and not a special token; special tokens (BOS) have byte
length 0 in `token_bytes` and are left out of both sums. Dividing by bytes instead of tokens makes runs with
different tokenizers comparable.

`val_bpb` works on numpy (or JAX) arrays of per-token nats; `val_bpb_from_logits` computes those nats from
logits. `bpb_totals` gives the two sums as JAX scalars (jit-friendly), so an evaluator can add them over
batches and divide once; averaging per-batch ratios would weight batches wrongly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from aira_jax.tasks.base import IGNORE


def _scored_bytes(targets, token_bytes, xp):
  """Byte length of each target, 0 where the target is IGNORE or a special token."""
  keep = targets != IGNORE
  safe = xp.where(keep, targets, 0)
  return xp.where(keep, xp.asarray(token_bytes)[safe], 0)


def val_bpb(nll_nats_per_token, target_ids, token_bytes) -> float:
  """Bits per byte from per-token cross-entropy in nats `nll_nats_per_token` (same shape as `target_ids`).

  Targets equal to IGNORE and targets whose `token_bytes` is 0 (special tokens) are excluded; ValueError if
  no target is scored.
  """
  nll = np.asarray(nll_nats_per_token, np.float64)
  targets = np.asarray(target_ids)
  if nll.shape != targets.shape:
    raise ValueError(f"nll shape {nll.shape} does not match targets shape {targets.shape}")
  byte_lengths = _scored_bytes(targets, np.asarray(token_bytes), np)
  total_bytes = int(byte_lengths.sum())
  if total_bytes == 0:
    raise ValueError("no scored targets: every target is IGNORE or a special token")
  total_nats = float(np.where(byte_lengths > 0, nll, 0.0).sum())
  return total_nats / (math.log(2) * total_bytes)


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-position cross-entropy in nats (float32), 0 where targets == IGNORE."""
  keep = targets != IGNORE
  safe = jnp.where(keep, targets, 0)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
  return jnp.where(keep, nll, 0.0)


def bpb_totals(logits: jax.Array, targets: jax.Array, token_bytes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(sum of nats, sum of bytes) over the scored targets; val_bpb = nats / (ln 2 * bytes)."""
  byte_lengths = _scored_bytes(targets, token_bytes, jnp)
  nats = jnp.sum(jnp.where(byte_lengths > 0, token_nll(logits, targets), 0.0))
  return nats, jnp.sum(byte_lengths)


def val_bpb_jax(logits: jax.Array, targets: jax.Array, token_bytes: jax.Array) -> jax.Array:
  """val_bpb of one batch as a float32 JAX scalar (0 if nothing is scored); jit-friendly."""
  nats, total_bytes = bpb_totals(logits, targets, token_bytes)
  return nats / (math.log(2) * jnp.maximum(total_bytes, 1).astype(jnp.float32))


def val_bpb_from_logits(logits, targets, token_bytes) -> float:
  """val_bpb from logits (..., vocab) and targets (...), as a Python float."""
  nll = token_nll(jnp.asarray(logits), jnp.asarray(targets))
  return val_bpb(np.asarray(nll), np.asarray(targets), token_bytes)
