"""Tests of the ListOps generator: labels checked by an independent recursive evaluator, the length window,
class spread, determinism, deduplication and the TSV round trip."""

import numpy as np
import pytest

from aira_jax.tasks.lra import listops
from aira_jax.tasks.lra.tokenize import decode_listops, encode_listops

SMALL = listops.ListOpsConfig(min_len=20, max_len=120, batch_trees=2048)


def recursive_value(tokens: list[str], i: int = 0) -> tuple[int, int]:
  """(value, next index) of the expression starting at tokens[i], by recursive descent."""
  token = tokens[i]
  if token.isdigit():
    return int(token), i + 1
  args, i = [], i + 1
  while tokens[i] != "]":
    value, i = recursive_value(tokens, i)
    args.append(value)
  ordered = sorted(args)
  n = len(ordered)
  result = {"[MIN": ordered[0], "[MAX": ordered[-1], "[SM": sum(args) % 10,
            "[MED": (ordered[(n - 1) // 2] + ordered[n // 2]) // 2}[token]
  return result, i + 1


@pytest.fixture(scope="module")
def generated():
  return listops.generate(600, seed=3, config=SMALL)


def test_every_label_matches_an_independent_evaluator(generated):
  tokens, labels = generated
  for ids, label in zip(tokens, labels):
    words = decode_listops(ids).split()
    value, end = recursive_value(words)
    assert end == len(words) and value == label


def test_lengths_in_window_and_classes_spread(generated):
  tokens, labels = generated
  assert all(SMALL.min_len < len(t) < SMALL.max_len for t in tokens)
  counts = np.bincount(labels, minlength=10)
  assert (counts > 0).all() and counts.max() / len(labels) < 0.3  # no class above 30% at 600 examples


def test_deterministic_and_deduplicated(generated):
  again = listops.generate(600, seed=3, config=SMALL)
  assert all(np.array_equal(a, b) for a, b in zip(generated[0], again[0]))
  assert len({t.tobytes() for t in generated[0]}) == 600
  other = listops.generate(50, seed=4, config=SMALL)
  assert not all(np.array_equal(a, b) for a, b in zip(generated[0][:50], other[0]))


def test_default_window_generates_long_expressions():
  tokens, labels = listops.generate(5, seed=0)
  assert all(500 < len(t) < 2000 for t in tokens) and len(labels) == 5


def test_operator_evaluator_and_parenthesised_format():
  assert listops.evaluate("[MAX 4 3 [MIN 2 3 ] 1 0 ]") == 4
  assert listops.evaluate("( ( ( ( [MED 1 ) 2 ) 4 ) 8 ) ]") == 3
  assert listops.evaluate("[SM 9 8 [MED 1 2 ] ]") == 8
  assert decode_listops(encode_listops("( ( [MIN 2 ) 3 ) ]")) == "[MIN 2 3 ]"


def test_tsv_round_trip(tmp_path, generated):
  tokens, labels = generated
  listops.write_tsv(tmp_path / "x.tsv", tokens[:20], labels[:20])
  assert (tmp_path / "x.tsv").read_text().startswith("Source\tTarget\n")
  back_tokens, back_labels = listops.read_tsv(tmp_path / "x.tsv")
  assert np.array_equal(back_labels, labels[:20])
  assert all(np.array_equal(a, b) for a, b in zip(back_tokens, tokens[:20]))


@pytest.mark.parametrize("content, message", [
    ("", "header"), ("a\tb\n[MIN 1 2 ]\t1\n", "header"), ("Source\tTarget\n", "no examples"),
    ("Source\tTarget\n[MIN 1 2 ]\n", "2 tab-separated"), ("Source\tTarget\n[FOO 1 ]\t1\n", "unknown ListOps")])
def test_bad_tsv_errors_name_the_file(tmp_path, content, message):
  path = tmp_path / "bad.tsv"
  path.write_text(content)
  with pytest.raises(ValueError, match=message) as info:
    listops.read_tsv(path)
  assert str(path) in str(info.value)
  with pytest.raises(FileNotFoundError, match="missing.tsv"):
    listops.read_tsv(tmp_path / "missing.tsv")
