"""Zoology's multi-query associative recall (MQAR, Arora et al. 2023) as the registered task "mqar".

Why: associative recall explains most of the quality gap between attention and attention-free models, and
MQAR measures it with many queries per example.

Layout of one row of L = seq_len tokens, V = vocab_size, P = num_pairs:
- positions 0..2P-1, the context: P (key, value) pairs; keys are P distinct tokens of [1, V/2) (the lower
  half; token 0 is reserved as filler), values uniform over [V/2, V) (the upper half).
- the rest, the query region, is cut into S = (L - 2P) // 2 slots of two tokens; every key is queried once,
  in random order, in P distinct slots chosen by a power law: slot s (0 = right after the context) is drawn
  with probability proportional to (s + 1) ** -query_exponent among the slots not yet taken, one query after
  another (`query_exponent` 1.0 by default, so near slots are favoured and far ones still occur). A query
  slot holds the key then its value (the value is visible, teacher-forced, as in Zoology); every other
  position holds the filler 0 (an odd last position too).
- targets: the value at each query key position (the model predicts it from the key), IGNORE elsewhere, so
  accuracy counts query positions only.

Zoology's settings: vocab 8192 with (seq, pairs) in ZOOLOGY_SETTINGS. Split sizes are this module's choice
(20,000 / 1,000 / 1,000).
"""

from __future__ import annotations

import numpy as np

from aira_jax.tasks.base import Split, Task, TaskSpec
from aira_jax.tasks.registry import register_task
from aira_jax.tasks.sequence_data import next_token_split, random_subsets, split_rng

ZOOLOGY_VOCAB = 8192
ZOOLOGY_SETTINGS = ((64, 4), (128, 8), (256, 16))  # (seq_len, num_pairs)


def query_slot_log_weights(num_slots: int, exponent: float) -> np.ndarray:
  """log of the unnormalised power-law weight (s + 1) ** -exponent of each query slot s, (num_slots,)."""
  return -exponent * np.log(np.arange(1, num_slots + 1, dtype=np.float64))


def generate_mqar(rng: np.random.Generator, num: int, *, vocab_size: int, seq_len: int, num_pairs: int,
                  query_exponent: float = 1.0) -> Split:
  """`num` MQAR rows: inputs (num, seq_len) int32, targets (num, seq_len) int32 (see the module docstring)."""
  half = vocab_size // 2
  context = 2 * num_pairs
  num_slots = (seq_len - context) // 2
  if num_pairs < 1 or half - 1 < num_pairs:
    raise ValueError(f"need 1 <= num_pairs <= vocab_size/2 - 1 = {half - 1}, got {num_pairs}")
  if num_slots < num_pairs:
    raise ValueError(f"seq_len {seq_len} leaves {num_slots} query slots for {num_pairs} queries; "
                     f"need seq_len >= 4 * num_pairs")
  keys = 1 + random_subsets(rng, num, half - 1, num_pairs)  # (num, P) distinct
  values = rng.integers(half, vocab_size, (num, num_pairs))
  stream = np.zeros((num, seq_len), np.int64)
  stream[:, 0:context:2] = keys
  stream[:, 1:context:2] = values
  slots = random_subsets(rng, num, num_slots, num_pairs, query_slot_log_weights(num_slots, query_exponent))
  queried = rng.permuted(np.tile(np.arange(num_pairs), (num, 1)), axis=1)  # which pair each query asks
  key_pos = context + 2 * slots
  np.put_along_axis(stream, key_pos, np.take_along_axis(keys, queried, axis=1), axis=1)
  np.put_along_axis(stream, key_pos + 1, np.take_along_axis(values, queried, axis=1), axis=1)
  scored = np.zeros(stream.shape, bool)
  np.put_along_axis(scored, key_pos + 1, True, axis=1)
  return next_token_split(stream, scored, seq_len)


class MQARTask(Task):
  """MQAR at one setting and seed; "lm" head with `vocab_size` tokens and rows of `seq_len`."""

  def __init__(self, *, vocab_size: int = ZOOLOGY_VOCAB, seq_len: int = 64, num_pairs: int = 4,
               num_train: int = 20_000, num_validation: int = 1_000, num_test: int = 1_000, seed: int = 0,
               query_exponent: float = 1.0):
    super().__init__()
    for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len), ("num_train", num_train),
                        ("num_validation", num_validation), ("num_test", num_test)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"mqar: {name} must be a positive integer, got {value!r}")
    if query_exponent < 0:
      raise ValueError(f"mqar: query_exponent must be >= 0, got {query_exponent}")
    self.vocab_size, self.seq_len, self.num_pairs = vocab_size, seq_len, num_pairs
    self.sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    self.seed, self.query_exponent = int(seed), float(query_exponent)
    self.spec = TaskSpec(name="mqar", head="lm", vocab_size=vocab_size, seq_len=seq_len)
    generate_mqar(np.random.default_rng(0), 1, vocab_size=vocab_size, seq_len=seq_len, num_pairs=num_pairs)

  def build_splits(self) -> dict[str, Split]:
    return {split: generate_mqar(split_rng(self.seed, split), num, vocab_size=self.vocab_size,
                                 seq_len=self.seq_len, num_pairs=self.num_pairs,
                                 query_exponent=self.query_exponent)
            for split, num in self.sizes.items()}


_OPTIONS = ("vocab_size", "seq_len", "num_pairs", "num_train", "num_validation", "num_test", "seed",
            "query_exponent")


def make_mqar_task(**options) -> MQARTask:
  """MQARTask(**options); ValueError naming unknown options."""
  unknown = set(options) - set(_OPTIONS)
  if unknown:
    raise ValueError(f"unknown mqar option(s) {sorted(unknown)}; known: {', '.join(_OPTIONS)}")
  return MQARTask(**options)


register_task("mqar", make_mqar_task)
