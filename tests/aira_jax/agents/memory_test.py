"""Tests for `aira_jax.agents.memory`: good-node summaries, debug chains and their character budgets."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import analysis_memory, debug_chain, fit_entries, latest_analysis, summarize_good_nodes


def _journal(lower=False):
  journal = Journal()
  for i, metric in enumerate([0.2, 0.8, 0.5]):
    journal.append(Node(id=f"d{i}", operator="draft", metric=metric, plan=f"plan {i}", payload=f"{i + 1}A+2M",
                        lower_is_better=lower))
  journal.append(Node(id="b0", operator="improve", parent_ids=("d1",), is_buggy=True, plan="widen",
                      error="out of memory"))
  journal.append(Node(id="g1", operator="debug", parent_ids=("b0",), is_buggy=True, plan="halve batch",
                      error="shape mismatch"))
  journal.append(Node(id="g2", operator="debug", parent_ids=("g1",), is_buggy=True, plan="fix reshape",
                      error="NaN loss"))
  return journal


def test_summary_lists_the_k_best_best_first():
  text = summarize_good_nodes(_journal(), k=2)
  assert text.index("node d1") < text.index("node d2")
  assert "node d0" not in text
  assert "metric=0.8" in text and "plan: plan 1" in text and "2A+2M" in text and "higher is better" in text
  assert "trimmed" not in text


def test_summary_respects_lower_is_better_and_empty_journal():
  text = summarize_good_nodes(_journal(lower=True), k=1)
  assert "node d0" in text and "lower is better" in text
  assert summarize_good_nodes(Journal()) == ""


def test_summary_is_trimmed_to_budget_and_says_so():
  journal = Journal()
  for i in range(10):
    journal.append(Node(id=f"d{i}", operator="draft", metric=float(i), payload="A" * 300))
  text = summarize_good_nodes(journal, k=10, max_chars=1000)
  assert len(text) <= 1000
  assert text.startswith("#1 node d9")
  assert "[trimmed to 1000 chars:" in text and "of 10 good nodes shown in full]" in text


def test_debug_chain_is_oldest_first_with_plans_and_errors():
  text = debug_chain(_journal(), "g2")
  order = [text.index(s) for s in ("out of memory", "shape mismatch", "NaN loss")]
  assert order == sorted(order)
  assert "plan: widen" in text and "plan: fix reshape" in text and "node d1" not in text
  assert debug_chain(_journal(), "b0").count("attempt") == 1


def test_debug_chain_trims_the_oldest_attempts_first():
  journal = Journal()
  journal.append(Node(id="d", operator="draft", is_buggy=True, error="E" * 200))
  parent = "d"
  for i in range(8):
    journal.append(Node(id=f"g{i}", operator="debug", parent_ids=(parent,), is_buggy=True, error=f"err{i} " * 30))
    parent = f"g{i}"
  text = debug_chain(journal, "g7", max_chars=700)
  assert len(text) <= 700
  assert text.startswith("[trimmed to 700 chars:") and "of 9 attempts shown in full" in text
  assert "err7" in text and "node d)" not in text


def test_fit_entries_rejects_tiny_budgets():
  with pytest.raises(ValueError, match="max_chars"):
    fit_entries(["x"], 10)


@settings(max_examples=80, deadline=None)
@given(entries=st.lists(st.text(max_size=200), max_size=12), max_chars=st.integers(80, 2000),
       keep=st.sampled_from(["head", "tail"]))
def test_property_fit_entries_never_exceeds_the_budget(entries, max_chars, keep):
  text = fit_entries(entries, max_chars, keep=keep)
  assert len(text) <= max_chars
  if len("\n\n".join(entries)) <= max_chars:
    assert text == "\n\n".join(entries)
  else:
    assert "trimmed" in text


def test_analysis_memory_shows_the_latest_analysis_that_did_not_fail():
  journal = _journal()
  assert latest_analysis(journal) is None and analysis_memory(journal) == ""
  journal.append(Node(id="an1", operator="analyze", parent_ids=("d2",), payload="3 steps: 3 scored\nbest 0.8",
                      plan="more attention"))
  journal.append(Node(id="d9", operator="draft", metric=0.1))
  journal.append(Node(id="an2", operator="analyze", parent_ids=("d9",), is_buggy=True, error="bad reply"))
  assert latest_analysis(journal).id == "an1"
  text = analysis_memory(journal)
  assert text == "(analysis an1, written after 6 steps)\n3 steps: 3 scored\nbest 0.8\nNext directions: more attention"
  assert summarize_good_nodes(journal).count("node ") == 4  # analyses never rank among the good nodes
  journal.append(Node(id="an3", operator="analyze", parent_ids=("d9",), payload="x" * 5000))
  trimmed = analysis_memory(journal, max_chars=300)
  assert len(trimmed) <= 300 and "trimmed" in trimmed and trimmed.startswith("(analysis an3, written after 7 steps)")
  with pytest.raises(ValueError, match="max_chars"):
    analysis_memory(journal, max_chars=10)
