"""Tests for `aira_jax.compose.analysis`: the statistics the built-in agent writes, checked number by number
against hand-made journals."""

import pytest

from aira_jax.agents.journal import Journal, Node
from aira_jax.compose.analysis import (analyze_layouts, focus_symbol, position_group, run_group, share_group)
from aira_jax.layout import Layout


def _journal(lower=False):
  """Seven steps of one agent with an analysis after the fourth: four distinct layouts scored (one twice)."""
  journal = Journal()
  add = lambda node_id, operator, payload, metric=None, parents=(), **kw: journal.append(Node(
      id=node_id, operator=operator, parent_ids=parents, payload=payload, metric=metric, lower_is_better=lower, **kw))
  add("a", "draft", "AMMMMMMM", 0.5)            # share 1/8: 0-25%; 1 run; centre 0.0625: bottom
  add("b", "draft", "AAMMAAMM", 0.7)            # share 4/8: 50-75%; 2 runs; centre 0.4375: middle
  add("c", "improve", "AAAAMMMM", 0.6, ("b",))  # 50-75%; 1 run; centre 0.25: bottom
  add("d", "improve", "AMA", parents=("b",), is_buggy=True, error="InvalidLayoutProposal: layout 'AMA' has 3 layers")
  add("e", "analyze", "4 steps: ...", parents=("d",), plan="more attention")
  add("f", "improve", "MMMMMMMA", 0.8, ("b",))  # 0-25%; 1 run; centre 0.9375: top
  add("g", "improve", "MMMMMMMA", 0.8, ("f",))  # a duplicate: counted as a step, grouped once
  add("h", "debug", "", parents=("d",), is_buggy=True, error="out of memory: RESOURCE_EXHAUSTED")
  return journal


def test_the_statistics_of_a_hand_made_journal():
  analysis = analyze_layouts(_journal(), "AM")
  assert analysis.text.splitlines() == [
      "7 steps: 5 scored (4 distinct layouts), 2 failed (InvalidLayoutProposal x1, out of memory x1). Metric: "
      "higher is better.",
      "Since the previous analysis: 3 steps, 2 scored; best then 0.7, now 0.8.",
      "Best layouts: 0.8 7M+1A (1A:7M); 0.7 2A+2M+2A+2M (4A:4M); 0.6 4A+4M (4A:4M).",
      "By attention share: 0-25% n=2 best 0.8 mean 0.65; 50-75% n=2 best 0.7 mean 0.65.",
      "By attention runs: 1 run n=3 best 0.8 mean 0.6333; 2 runs n=1 best 0.7 mean 0.7.",
      "By attention centre: bottom third n=2 best 0.6 mean 0.55; middle third n=1 best 0.7 mean 0.7; top third n=1 "
      "best 0.8 mean 0.8.",
  ]
  assert analysis.directions == (
      "Best so far: 7M+1A. Best mean: attention share: 0-25% (mean 0.65 over 2), attention runs: 2 runs (mean 0.7 "
      "over 1), attention centre: top third (mean 0.8 over 1). Not tried yet: attention share: 25-50%, 75-100%; "
      "attention runs: 0 runs, 3+ runs.")


def test_lower_is_better_ranks_the_other_way():
  analysis = analyze_layouts(_journal(lower=True), "AM")
  assert "Metric: lower is better." in analysis.text
  assert "best then 0.5, now 0.5." in analysis.text
  assert "Best layouts: 0.5 1A+7M (1A:7M); 0.6 4A+4M (4A:4M); 0.7 2A+2M+2A+2M (4A:4M)." in analysis.text
  assert "By attention share: 0-25% n=2 best 0.5 mean 0.65; 50-75% n=2 best 0.6 mean 0.65." in analysis.text
  assert "attention runs: 1 run (mean 0.6333 over 3)" in analysis.directions


def test_nothing_scored_yet_and_a_first_analysis():
  journal = Journal()
  journal.append(Node(id="x", operator="draft", payload="8X", is_buggy=True, error="ValueError: unknown primitive"))
  analysis = analyze_layouts(journal, "AM")
  assert analysis.text == ("1 step: 0 scored (0 distinct layouts), 1 failed (ValueError x1). Metric: higher is "
                           "better.\nNo layout has been scored yet.")
  assert "Nothing scored yet" in analysis.directions
  assert "Since the previous analysis" not in analyze_layouts(_journal(), "AM").text.splitlines()[0]


def test_a_space_without_attention_groups_by_its_first_primitive():
  assert focus_symbol("AMS") == "A" and focus_symbol("MS") == "M"
  journal = Journal()
  journal.append(Node(id="a", operator="draft", payload="MMSS", metric=1.0))
  journal.append(Node(id="b", operator="draft", payload="SMSM", metric=2.0))
  text = analyze_layouts(journal, "MS").text
  assert "By mlp share: 50-75% n=2 best 2 mean 1.5." in text and "By mlp runs: 1 run n=1" in text


@pytest.mark.parametrize("text, share, runs, centre", [
    ("MMMM", "0-25%", "0 runs", None),
    ("AMMM", "25-50%", "1 run", "bottom third"),
    ("MAAM", "50-75%", "1 run", "middle third"),
    ("AMAMAAAA", "75-100%", "3+ runs", "middle third"),
    ("MMMMMMAA", "25-50%", "1 run", "top third"),
])
def test_groups(text, share, runs, centre):
  layout = Layout.parse(text)
  assert (share_group(layout, "A"), run_group(layout, "A"), position_group(layout, "A")) == (share, runs, centre)
