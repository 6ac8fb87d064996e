"""The design report's verdict on the leaderboard: which leaders are within 2 standard errors of the best."""

import types

from aira_jax.design.evaluator import code_key
from aira_jax.design.report import _separation


def _board(scores_and_errors):
  nodes, rows = [], {}
  for i, (score, se) in enumerate(scores_and_errors):
    code = f"# candidate {i}\n"
    nodes.append(types.SimpleNamespace(payload=code, metric=score))
    rows[code_key(code)] = types.SimpleNamespace(details={"metrics": {"val_accuracy_se": se}})
  return nodes, rows


def test_leaders_within_two_standard_errors_are_called_tied():
  # Differences 0.02 and 0.10 against 2 * sqrt(2) * 0.02 = 0.0566: the first is a tie, the second is not.
  nodes, rows = _board([(0.50, 0.02), (0.48, 0.02), (0.40, 0.02)])
  [sentence, _] = _separation(nodes, rows, "val_accuracy")
  assert sentence.startswith("1 of the other 2 candidates are within 2 standard errors of the best")


def test_a_clear_leader_and_missing_errors():
  nodes, rows = _board([(0.60, 0.01), (0.50, 0.01)])
  assert _separation(nodes, rows, "val_accuracy")[0].startswith("The best candidate is ahead of every other")
  nodes, rows = _board([(0.60, None), (0.50, 0.01)])
  assert _separation(nodes, rows, "val_accuracy") == []  # no se (e.g. autoresearch): no verdict is invented
