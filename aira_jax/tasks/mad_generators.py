"""Seeded numpy generators for the six MAD tasks (Poli et al. 2024), one function per task.

Why separate from `mad.py`: these are pure functions of (numpy Generator, sizes) -> (inputs, targets), easy to
test against independent re-derivations; `mad.py` holds the settings, the Task class and the registry.

Every generator returns `Split`-ready arrays: inputs (N, L) int32 and targets (N, L) int32, targets = the next
token where predicting it tests the skill and IGNORE (-100) elsewhere. Token layouts (V = vocab_size):

- recall (in-context, noisy, memorization): keys are [0, V/2), values [V/2, V); the stream is key-value
  pairs (noisy recall: noise tokens [V, V + noise_vocab) between pairs); a trailing odd slot holds one key.
- fuzzy recall: 0 is padding, key tokens [1, 1 + (V-1)//2), value tokens the rest; keys and values are
  motifs of 1..max_motif tokens, the keys of one example prefix-free so a key's end is known when it ends.
- selective copying: 0 is the blank (noise) token, 1 the "copy now" delimiter, data tokens [2, V).
- compression: data tokens [0, V-2), V-2 the compression token, V-1 the blank "reconstruct here" token.
"""

from __future__ import annotations

import numpy as np

from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.sequence_data import next_token_split, random_subsets

Arrays = tuple[np.ndarray, np.ndarray]


def _as_arrays(split) -> Arrays:
  return split.inputs, split.targets


def key_value_stream(rng: np.random.Generator, num: int, seq_len: int, *, vocab_size: int,
                     value_table: np.ndarray | None = None, noise_vocab: int = 0, noise_fraction: float = 0.0,
                     score_first_occurrence: bool = False) -> Arrays:
  """Key-value recall streams (in-context recall, noisy recall, memorization).

  Args:
    rng: the split's generator.
    num, seq_len: examples N and model length L (a stream of L + 1 tokens is built, then shifted).
    vocab_size: V; keys [0, V/2), values [V/2, V).
    value_table: (V/2,) fixed key -> value map (memorization); None draws a fresh map per example,
      each key's value uniform over the values (in-context recall).
    noise_vocab, noise_fraction: noise tokens [V, V + noise_vocab) making up about `noise_fraction` of the
      stream, inserted between pairs at uniformly random places.
    score_first_occurrence: score every value (memorization) rather than only values of keys already seen
      earlier in the example (in-context recall: the first value of a key cannot be inferred).

  Returns:
    inputs, targets: (N, L) int32; scored targets sit at key positions and hold that key's value.
  """
  half = vocab_size // 2
  length = seq_len + 1
  num_noise = int(round(noise_fraction * length)) if noise_vocab else 0
  num_pairs = (length - num_noise) // 2
  leftover = length - num_noise - 2 * num_pairs  # 0 or 1: a trailing lone key
  if num_pairs < 1:
    raise ValueError(f"seq_len {seq_len} with noise {noise_fraction} leaves no key-value pair")
  keys = rng.integers(0, half, (num, num_pairs))
  if value_table is None:
    table = rng.integers(half, vocab_size, (num, half))
  else:
    table = np.broadcast_to(np.asarray(value_table), (num, half))
  values = np.take_along_axis(table, keys, axis=1)
  seen = np.zeros((num, half), bool)
  pair_scored = np.zeros((num, num_pairs), bool)
  rows = np.arange(num)
  for p in range(num_pairs):
    pair_scored[:, p] = True if score_first_occurrence else seen[rows, keys[:, p]]
    seen[rows, keys[:, p]] = True
  # Units in stream order: pairs (2 tokens, in pair order) and noise tokens (1 token), shuffled per example.
  units = num_pairs + num_noise
  is_pair = rng.permuted(np.tile(np.arange(units) < num_pairs, (num, 1)), axis=1)
  sizes = np.where(is_pair, 2, 1)
  starts = np.cumsum(sizes, axis=1) - sizes
  pair_index = np.cumsum(is_pair, axis=1) - 1
  stream = np.zeros((num, length), np.int64)
  scored = np.zeros((num, length), bool)
  r, j = np.nonzero(is_pair)
  p = pair_index[r, j]
  stream[r, starts[r, j]] = keys[r, p]
  stream[r, starts[r, j] + 1] = values[r, p]
  scored[r, starts[r, j] + 1] = pair_scored[r, p]
  r, j = np.nonzero(~is_pair)
  if r.size:
    stream[r, starts[r, j]] = rng.integers(vocab_size, vocab_size + noise_vocab, r.size)
  if leftover:
    stream[:, -1] = rng.integers(0, half, num)
  return _as_arrays(next_token_split(stream, scored, seq_len))


def _motif(rng: np.random.Generator, low: int, high: int, max_len: int) -> tuple:
  """A motif of 1..max_len tokens drawn uniformly from [low, high)."""
  return tuple(rng.integers(low, high, rng.integers(1, max_len + 1)).tolist())


def _prefix_free_motifs(rng: np.random.Generator, count: int, low: int, high: int, max_len: int) -> list[tuple]:
  """`count` distinct motifs over [low, high), none a prefix of another (count <= high - low)."""
  motifs: list[tuple] = []
  while len(motifs) < count:
    motif = _motif(rng, low, high, max_len)
    if all(m[:len(motif)] != motif and motif[:len(m)] != m for m in motifs):
      motifs.append(motif)
  return motifs


def fuzzy_recall(rng: np.random.Generator, num: int, seq_len: int, *, vocab_size: int, max_motif: int) -> Arrays:
  """Recall where keys and values are motifs of 1..max_motif tokens.

  Per example: one prefix-free key motif per key token (so as many keys as in-context recall has), a random
  value motif per key, then uniformly drawn (key, value) pairs until the next pair would not fit; the rest is
  padding (0). Scored: every token of a value whose key already appeared earlier in the example (the first
  value token is predicted at the key's last token).

  Returns inputs, targets (N, L) int32.
  """
  length = seq_len + 1
  num_key_tokens = (vocab_size - 1) // 2
  stream = np.zeros((num, length), np.int64)
  scored = np.zeros((num, length), bool)
  for n in range(num):
    keys = _prefix_free_motifs(rng, num_key_tokens, 1, 1 + num_key_tokens, max_motif)
    values = [_motif(rng, 1 + num_key_tokens, vocab_size, max_motif) for _ in keys]
    draws = rng.integers(len(keys), size=length).tolist()  # more pairs than can fit
    seen = set()
    pos = 0
    for k in draws:
      pair = keys[k] + values[k]
      if pos + len(pair) > length:
        break
      stream[n, pos:pos + len(pair)] = pair
      if k in seen:
        scored[n, pos + len(keys[k]):pos + len(pair)] = True
      seen.add(k)
      pos += len(pair)
  return _as_arrays(next_token_split(stream, scored, seq_len))


def selective_copying(rng: np.random.Generator, num: int, seq_len: int, *, vocab_size: int,
                      num_copy: int) -> Arrays:
  """Copy the data tokens scattered among blanks, in order, after a delimiter.

  Stream of L + 1 tokens: a region of L - num_copy tokens holding num_copy data tokens at uniformly random
  positions (blanks elsewhere), the delimiter, then the num_copy data tokens in order. Scored: the copies.

  Returns inputs, targets (N, L) int32.
  """
  region = seq_len - num_copy
  if region < num_copy:
    raise ValueError(f"seq_len {seq_len} is too short to hide {num_copy} tokens")
  data = rng.integers(2, vocab_size, (num, num_copy))
  where = np.sort(random_subsets(rng, num, region, num_copy), axis=1)
  stream = np.zeros((num, seq_len + 1), np.int64)
  np.put_along_axis(stream, where, data, axis=1)
  stream[:, region] = 1
  stream[:, region + 1:] = data
  scored = np.zeros(stream.shape, bool)
  scored[:, region + 1:] = True
  return _as_arrays(next_token_split(stream, scored, seq_len))


def compression(rng: np.random.Generator, num: int, seq_len: int, *, vocab_size: int) -> Arrays:
  """Reconstruct a random sequence after a compression token, modelled with a causal LM.

  MAD feeds seq_len tokens (ending in a compression token) to the model and decodes the whole input from the
  compression token's output alone. A causal LM with per-position targets cannot restrict the decoder to
  that one state, so here the model sees 2 * seq_len tokens: the seq_len - 1 data tokens, the compression
  token, then seq_len blank tokens; the output at the compression token and the following blanks must give
  data token 1, 2, ..., seq_len - 1 (targets only there). The blanks carry no content, only their position,
  so each reconstruction step must read the sequence back from the context (not from a teacher-forced
  previous token); the bottleneck is not enforced by the architecture.

  Returns inputs, targets (N, 2 * seq_len) int32.
  """
  n = seq_len - 1
  data = rng.integers(0, vocab_size - 2, (num, n))
  inputs = np.full((num, 2 * seq_len), vocab_size - 1, np.int32)
  inputs[:, :n] = data
  inputs[:, n] = vocab_size - 2
  targets = np.full(inputs.shape, IGNORE, np.int32)
  targets[:, n:2 * n] = data
  return inputs, targets
