"""Small helpers shared by the synthetic token tasks (MAD, MQAR): per-split random generators and turning a
token stream plus a "scored" mask into a next-token `Split`.

Why: every synthetic task builds a stream of tokens and marks which tokens test the skill; the LM sees
stream[:, :L] and is scored on predicting stream[:, t + 1] only where that token is marked.
"""

from __future__ import annotations

import numpy as np

from aira_jax.tasks.base import IGNORE, SPLITS, Split


def split_rng(seed: int, split: str) -> np.random.Generator:
  """An independent generator for one split of one seed ("train", "validation", "test" or another tag)."""
  tags = {name: i for i, name in enumerate(SPLITS)}
  tag = tags.get(split)
  if tag is None:
    tag = sum(ord(c) * 31**i for i, c in enumerate(split)) % (2**31) + len(SPLITS)
  return np.random.default_rng([int(seed), tag])


def next_token_split(stream: np.ndarray, scored: np.ndarray, seq_len: int) -> Split:
  """Inputs and next-token targets from a token stream.

  Args:
    stream: (N, T) integer tokens, T == seq_len or seq_len + 1.
    scored: (N, T) bool, True where predicting that token tests the skill (position 0 is never predicted).
    seq_len: L, the model's sequence length.

  Returns:
    Split with inputs = stream[:, :L] (int32) and targets (N, L) int32 where targets[:, t] = stream[:, t + 1]
    if that token is scored, else IGNORE (and IGNORE at t = L - 1 when T == L).
  """
  num, length = stream.shape
  if length not in (seq_len, seq_len + 1) or scored.shape != stream.shape:
    raise ValueError(f"stream {stream.shape} / scored {scored.shape} do not fit seq_len {seq_len}")
  nxt = np.full((num, seq_len), IGNORE, np.int32)
  keep = np.zeros((num, seq_len), bool)
  nxt[:, :length - 1] = stream[:, 1:]
  keep[:, :length - 1] = scored[:, 1:]
  targets = np.where(keep, nxt, IGNORE).astype(np.int32)
  return Split(inputs=np.ascontiguousarray(stream[:, :seq_len], dtype=np.int32), targets=targets)


def random_subsets(rng: np.random.Generator, num: int, population: int, size: int,
                   log_weights: np.ndarray | None = None) -> np.ndarray:
  """`size` distinct indices in [0, population) per row, (num, size) int64, in random order.

  Uniform by default; with `log_weights` (population,) it samples without replacement with probabilities
  proportional to exp(log_weights), one pick after another (Gumbel top-k, which has exactly that law).
  """
  if size > population:
    raise ValueError(f"cannot pick {size} distinct items out of {population}")
  if log_weights is None and population > 8 * size:
    return _distinct_by_rejection(rng, num, population, size)
  scores = rng.gumbel(size=(num, population))
  if log_weights is not None:
    scores = scores + log_weights[None, :]
  top = np.argpartition(-scores, size - 1, axis=1)[:, :size] if size < population else \
      np.tile(np.arange(population), (num, 1))
  return rng.permuted(top, axis=1)


def _distinct_by_rejection(rng: np.random.Generator, num: int, population: int, size: int) -> np.ndarray:
  """Uniform distinct draws for a large population: draw with replacement, redraw rows holding a repeat."""
  picks = rng.integers(0, population, (num, size))
  while True:
    ordered = np.sort(picks, axis=1)
    bad = np.nonzero(np.any(ordered[:, 1:] == ordered[:, :-1], axis=1))[0]
    if bad.size == 0:
      return picks
    picks[bad] = rng.integers(0, population, (bad.size, size))
