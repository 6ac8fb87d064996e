"""Tests for MQAR: key / value halves, unique keys, targets re-derived from the context, power-law query
placement against an independent sampler, seeding, split sizes, registry options, perfect-logit accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aira_jax.tasks import IGNORE, accuracy, make_task
from aira_jax.tasks.mqar import ZOOLOGY_SETTINGS, ZOOLOGY_VOCAB, generate_mqar

SMALL = dict(num_train=32, num_validation=8, num_test=16)


@pytest.mark.parametrize("seq_len,num_pairs", ZOOLOGY_SETTINGS)
def test_layout_halves_unique_keys_and_targets(seq_len, num_pairs):
  task = make_task("mqar", seq_len=seq_len, num_pairs=num_pairs, **SMALL)
  assert task.spec.vocab_size == ZOOLOGY_VOCAB and task.spec.seq_len == seq_len and task.spec.head == "lm"
  splits = task.splits()
  assert {k: len(v) for k, v in splits.items()} == {"train": 32, "validation": 8, "test": 16}
  half = ZOOLOGY_VOCAB // 2
  for split in splits.values():
    assert split.inputs.dtype == np.int32 and split.targets.dtype == np.int32
    assert split.inputs.shape == split.targets.shape == (len(split), seq_len)
    assert split.inputs.min() >= 0 and split.inputs.max() < ZOOLOGY_VOCAB
    for row, target in zip(split.inputs, split.targets):
      keys, values = row[0:2 * num_pairs:2], row[1:2 * num_pairs:2]
      assert keys.min() >= 1 and keys.max() < half and len(set(keys.tolist())) == num_pairs
      assert values.min() >= half and values.max() < ZOOLOGY_VOCAB
      memory = dict(zip(keys.tolist(), values.tolist()))
      # Independent re-derivation: after the context, a key token asks for its context value.
      expected = np.full(seq_len, IGNORE)
      for t in range(2 * num_pairs, seq_len - 1):
        if 1 <= row[t] < half:
          expected[t] = memory[int(row[t])]
          assert row[t + 1] == expected[t]
      np.testing.assert_array_equal(target, expected)
      asked = row[2 * num_pairs:][(row[2 * num_pairs:] >= 1) & (row[2 * num_pairs:] < half)]
      assert sorted(asked.tolist()) == sorted(keys.tolist())  # every key queried exactly once
      rest = np.ones(seq_len, bool)
      rest[:2 * num_pairs] = False
      query = np.nonzero(target != IGNORE)[0]
      rest[query] = rest[query + 1] = False
      assert np.all(row[rest] == 0)


def test_power_law_query_placement_matches_an_independent_sampler():
  seq_len, num_pairs, exponent, num = 64, 4, 1.0, 4000
  split = generate_mqar(np.random.default_rng(0), num, vocab_size=256, seq_len=seq_len, num_pairs=num_pairs,
                        query_exponent=exponent)
  num_slots = (seq_len - 2 * num_pairs) // 2
  rows, pos = np.nonzero(split.targets != IGNORE)
  assert np.all(pos % 2 == 0) and np.all(np.bincount(rows, minlength=num) == num_pairs)
  observed = np.bincount((pos - 2 * num_pairs) // 2, minlength=num_slots) / (num * num_pairs)
  # Reference: sequential draws without replacement with p(slot s) ~ (s + 1) ** -exponent.
  weights = np.arange(1, num_slots + 1, dtype=np.float64) ** -exponent
  rng = np.random.default_rng(123)
  reference = np.zeros(num_slots)
  for _ in range(num):
    reference[rng.choice(num_slots, num_pairs, replace=False, p=weights / weights.sum())] += 1
  reference /= num * num_pairs
  np.testing.assert_allclose(observed, reference, atol=0.015)
  assert observed[:7].sum() > 2 * observed[-7:].sum()  # near slots favoured
  uniform = generate_mqar(np.random.default_rng(0), num, vocab_size=256, seq_len=seq_len, num_pairs=num_pairs,
                          query_exponent=0.0)
  _, upos = np.nonzero(uniform.targets != IGNORE)
  flat = np.bincount((upos - 2 * num_pairs) // 2, minlength=num_slots) / (num * num_pairs)
  np.testing.assert_allclose(flat, 1 / num_slots, atol=0.01)


def test_seeding_and_options():
  a = make_task("mqar", seed=1, **SMALL).splits()
  b = make_task("mqar", seed=1, **SMALL).splits()
  c = make_task("mqar", seed=2, **SMALL).splits()
  np.testing.assert_array_equal(a["train"].inputs, b["train"].inputs)
  np.testing.assert_array_equal(a["test"].targets, b["test"].targets)
  assert not np.array_equal(a["train"].inputs, c["train"].inputs)
  assert not np.array_equal(a["train"].inputs[:16], a["test"].inputs)
  t = make_task("mqar", vocab_size=64, seq_len=32, num_pairs=6, num_train=5, num_test=3, seed=0)
  assert t.spec.vocab_size == 64 and len(t.splits()["train"]) == 5 and len(t.splits()["test"]) == 3
  assert t.splits()["train"].inputs.max() < 64
  with pytest.raises(ValueError, match="seq_len >= 4"):
    make_task("mqar", seq_len=32, num_pairs=10)
  with pytest.raises(ValueError, match="unknown mqar option"):
    make_task("mqar", width=3)


def test_perfect_logits_give_accuracy_one():
  split = make_task("mqar", vocab_size=512, **SMALL).splits()["test"]
  targets = jnp.asarray(split.targets)
  logits = 30.0 * jax.nn.one_hot(jnp.where(targets == IGNORE, 0, targets), 512)
  assert float(accuracy(logits, targets)) == 1.0
