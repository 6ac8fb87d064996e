"""Tests for `aira_jax.design.analysis`: the statistics the built-in design agent writes, checked number by number
against a hand-made journal in both metric directions."""

import pytest

from aira_jax.agents.journal import Journal, Node
from aira_jax.design.analysis import analyze_candidates, describe_candidate, failure_kind
from aira_jax.design.knobs import set_knobs

ALPHA = "# seed: alpha\nWINDOW = 8  # knob: 8, 16, 32\nHEADS = 2  # knob: 2, 4, 8\n\ndef mix(x):\n  return x\n"
BETA = "# seed: beta\nSTATE = 8  # knob: 8, 16\n"
OWN = "def mix(x):\n  return 2 * x\n"  # an LLM's file: no seed line, no knobs


def alpha(window, heads=2):
  return set_knobs(ALPHA, {"WINDOW": str(window), "HEADS": str(heads)})


def _journal(lower=False):
  """Nine steps of one agent with an analysis after the fourth: five distinct files scored (one twice)."""
  journal = Journal()
  add = lambda node_id, operator, payload, metric=None, parents=(), **kw: journal.append(Node(
      id=node_id, operator=operator, parent_ids=parents, payload=payload, metric=metric, lower_is_better=lower, **kw))
  add("a", "draft", alpha(8), 0.5)
  add("b", "draft", BETA, 0.4)
  add("c", "improve", alpha(16), 0.7, ("a",))
  add("d", "improve", alpha(16, 4), parents=("c",), is_buggy=True, error="stage train failed: the loss is NaN")
  add("e", "analyze", "4 steps: ...", parents=("d",), plan="vary WINDOW")
  add("f", "improve", alpha(32), 0.6, ("c",))
  add("g", "improve", alpha(16), 0.7, ("f",))  # a duplicate: a step, grouped once
  add("h", "draft", OWN, 0.45)
  add("i", "debug", alpha(8, 4), parents=("d",), is_buggy=True, error="killed (timeout 60 s) during stage compile")
  add("j", "draft", "", is_buggy=True, error="ReplyParseError: no ```python block found")
  return journal


def test_the_statistics_of_a_hand_made_journal():
  analysis = analyze_candidates(_journal(), seeds=["alpha", "beta", "gamma"])
  assert analysis.text.splitlines() == [
      "9 steps: 6 scored (5 distinct candidates), 3 failed (stage train x1, stage compile (killed) x1, "
      "ReplyParseError x1). Metric: higher is better.",
      "Since the previous analysis: 5 steps, 3 scored; best then 0.7, now 0.7.",
      "Best candidates: 0.7 alpha WINDOW=16, HEADS=2 (node c); 0.6 alpha WINDOW=32, HEADS=2 (node f); 0.5 alpha "
      "WINDOW=8, HEADS=2 (node a).",
      "By seed: alpha n=3 best 0.7 mean 0.6; beta n=1 best 0.4 mean 0.4; no seed line n=1 best 0.45 mean 0.45.",
      "Within alpha, by WINDOW: 8 n=1 best 0.5 mean 0.5; 16 n=1 best 0.7 mean 0.7; 32 n=1 best 0.6 mean 0.6.",
      "Within alpha, by HEADS: 2 n=3 best 0.7 mean 0.6.",
  ]
  assert analysis.directions == (
      "Best so far: alpha WINDOW=16, HEADS=2 (node c). Best mean: seed alpha (mean 0.6 over 3), WINDOW=16 (mean 0.7 "
      "over 1). Not tried yet: seeds gamma; alpha HEADS=8.")  # HEADS=4 was tried: it failed


def test_lower_is_better_ranks_the_other_way():
  analysis = analyze_candidates(_journal(lower=True), seeds=["alpha", "beta"])
  lines = analysis.text.splitlines()
  assert lines[0].endswith("Metric: lower is better.") and lines[1].endswith("best then 0.4, now 0.4.")
  assert lines[2] == ("Best candidates: 0.4 beta STATE=8 (node b); 0.45 no seed line (node h); 0.5 alpha WINDOW=8, "
                      "HEADS=2 (node a).")
  assert lines[4:] == ["Within beta, by STATE: 8 n=1 best 0.4 mean 0.4."]
  assert analysis.directions == ("Best so far: beta STATE=8 (node b). Best mean: seed beta (mean 0.4 over 1). "
                                 "Not tried yet: beta STATE=16.")
  assert "By seed: alpha n=3 best 0.5 mean 0.6;" in analysis.text
  # Without an explicit direction the scored nodes' is used.
  assert analyze_candidates(_journal(lower=True)) == analyze_candidates(_journal(lower=True), lower_is_better=True)


def test_nothing_scored_yet():
  journal = Journal()
  journal.append(Node(id="x", operator="draft", payload=BETA, is_buggy=True, lower_is_better=True,
                      error="stage import failed: SyntaxError"))
  analysis = analyze_candidates(journal, seeds=["beta", "alpha"])
  assert analysis.text == ("1 step: 0 scored (0 distinct candidates), 1 failed (stage import x1). Metric: lower is "
                           "better.\nNo candidate has been scored yet.")
  assert analysis.directions == ("Nothing scored yet: avoid what made the failures above fail. Seeds not tried yet: "
                                 "alpha.")  # beta was tried: it failed
  assert "Metric: higher is better." in analyze_candidates(journal, lower_is_better=False).text


@pytest.mark.parametrize("error, kind", [
    ("stage interface failed: wrong shape", "stage interface"),
    ("stage score computed no 'val_accuracy' (got [])", "stage score"),
    ("killed (memory) during stage train", "stage train (killed)"),
    ("exited with code 3 during stage startup", "stage startup (exited)"),
    ("LLMResponseError: the reply is not valid JSON", "LLMResponseError"),
    (None, "unknown"),
])
def test_failure_kinds(error, kind):
  assert failure_kind(Node(id="n", operator="draft", payload="x", is_buggy=True, error=error)) == kind


def test_describe_candidate():
  assert describe_candidate(alpha(32, 4)) == "alpha WINDOW=32, HEADS=4"
  assert describe_candidate(OWN) == "no seed line" and describe_candidate("  ") == "(no code)"
  assert describe_candidate("# seed: beta\nSTATE = oops  # knob: 8\n") == "beta"  # malformed knobs: just the seed
