"""Tests for aira_jax.compose.aggregate: 1-D k-means top cluster, the N_c vote and its tie-breaking,
de-duplication of pooled results, and the input errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.compose import aggregate as aggregate_module
from aira_jax.compose.aggregate import Aggregation, aggregate, top_cluster, vote
from aira_jax.layout import Layout

# Three well-separated groups: around 1.0 (indices 0, 3, 6), 2.0 (1, 4, 7) and 3.0 (2, 5, 8).
GROUPED_SCORES = [1.0, 2.0, 3.0, 1.05, 2.05, 3.05, 0.95, 1.95, 2.95]


def test_top_cluster_picks_the_best_group_in_either_direction():
  assert top_cluster(GROUPED_SCORES, k=3, lower_is_better=True) == [0, 3, 6]
  assert top_cluster(GROUPED_SCORES, k=3, lower_is_better=False) == [2, 5, 8]


def test_top_cluster_with_k_1_keeps_everything():
  assert top_cluster(GROUPED_SCORES, k=1, lower_is_better=True) == list(range(9))


def test_top_cluster_shrinks_k_to_the_number_of_distinct_scores():
  assert top_cluster([0.5, 0.9, 0.5, 0.9], k=5, lower_is_better=True) == [0, 2]
  assert top_cluster([0.7, 0.7, 0.7], k=5, lower_is_better=False) == [0, 1, 2]
  assert top_cluster([0.3], lower_is_better=True) == [0]


def test_top_cluster_is_deterministic_for_a_seed():
  scores = np.random.default_rng(1).normal(size=60).tolist()
  first = top_cluster(scores, lower_is_better=True, seed=7)
  assert first == top_cluster(scores, lower_is_better=True, seed=7)
  assert 0 < len(first) < len(scores)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30).map(float), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=6), st.booleans(), st.integers(min_value=0, max_value=3))
def test_top_cluster_is_an_interval_holding_the_best_score(scores, k, lower_is_better, seed):
  members = top_cluster(scores, k=k, lower_is_better=lower_is_better, seed=seed)
  assert members == sorted(set(members))
  best = min(scores) if lower_is_better else max(scores)
  chosen = [scores[i] for i in members]
  assert best in chosen
  # 1-D clusters are intervals: every score between the cluster's extremes belongs to it.
  inside = [i for i, s in enumerate(scores) if min(chosen) <= s <= max(chosen)]
  assert inside == members
  if len(set(scores)) >= 2 and k >= 2:
    assert len(set(chosen)) < len(set(scores))


@pytest.mark.parametrize("scores, fragment", [
    ([], "no scores"),
    ([1.0, float("nan")], "score 1 is nan"),
    ([float("inf")], "score 0 is inf"),
    ([[1.0, 2.0]], "flat sequence"),
])
def test_top_cluster_rejects_bad_scores(scores, fragment):
  with pytest.raises(ValueError, match=fragment):
    top_cluster(scores, lower_is_better=True)


def test_top_cluster_rejects_bad_k():
  for k in (0, -1, 2.0):
    with pytest.raises(ValueError, match="k must be a positive integer"):
      top_cluster([1.0, 2.0], k=k, lower_is_better=True)


def test_n0_vote_is_the_per_layer_majority():
  assert vote(["AAM", "AMM", "AMA"]) == Layout.parse("AMM")
  assert vote([Layout.parse("2A+2M"), "AMMM", "AAAM"]) == Layout.parse("AAMM")


def test_vote_ties_go_to_the_earlier_primitive_in_the_alphabet():
  assert vote(["AM", "MA"]).text == "AA"
  assert vote(["S", "M"]).text == "M"
  assert vote(["SSM", "AAS", "MMA"]).text == "AAA"


def test_context_vote_conditions_on_the_layers_already_chosen():
  layouts = ["AA", "AA", "MM", "MM", "MA"]
  # N_0: layer 0 is M (3 of 5), layer 1 is A (3 of 5).
  assert vote(layouts, context=0).text == "MA"
  # N_1: layer 1 votes only among the layouts whose layer 0 is M: MM, MM, MA.
  assert vote(layouts, context=1).text == "MM"
  # A context longer than the depth uses every chosen layer.
  assert vote(layouts, context=5).text == "MM"


def test_context_two_sees_further_back_than_context_one():
  layouts = ["AMA", "AMA", "MMS", "MMS", "MMS", "AAM"]
  # Layer 0: A 3 : M 3, a tie -> A. Layer 1: M (5 of 6) whatever the context.
  # Layer 2: N_0 and N_1 (layer 1 is M: AMA, AMA, MMS x3) vote S; N_2 (layers 0-1 are AM: AMA x2) votes A.
  assert vote(layouts, context=0).text == "AMS"
  assert vote(layouts, context=1).text == "AMS"
  assert vote(layouts, context=2).text == "AMA"


def test_context_backs_off_to_shorter_contexts_when_nothing_matches():
  layouts = [Layout.parse(text) for text in ["AAM", "MAS", "MAS"]]
  # Prefix "SA": no layout has S at layer 0, so the context shrinks to "A" at layer 1 (all three match): S.
  assert aggregate_module._next_symbol(layouts, ["S", "A"], context=2) == "S"
  # Prefix "MM": nothing ends in M at layer 1 either, so context 0: S 2 : M 1.
  assert aggregate_module._next_symbol(layouts, ["M", "M"], context=2) == "S"
  # The full context "AA" matches "AAM" only.
  assert aggregate_module._next_symbol(layouts, ["A", "A"], context=2) == "M"


def test_vote_errors():
  with pytest.raises(ValueError, match="no layouts"):
    vote([])
  with pytest.raises(ValueError, match=r"same depth.*\[2, 3\]"):
    vote(["AM", "AMA", "MA"])
  with pytest.raises(ValueError, match="context must be a non-negative integer"):
    vote(["AM"], context=-1)


def test_aggregate_votes_over_the_top_cluster_only():
  good = ["AAMM", "AAMA", "AMMM"]
  bad = ["MMAA", "MMAS", "MSAA", "SMAA"]
  result = aggregate(good + bad, [0.9, 0.91, 0.92, 0.2, 0.21, 0.22, 0.23], k=2, lower_is_better=False)
  assert isinstance(result, Aggregation)
  assert result.layout == Layout.parse("AAMM")
  assert result.members == tuple(Layout.parse(t) for t in ["AMMM", "AAMA", "AAMM"])  # best score first
  assert result.member_scores == (0.92, 0.91, 0.9)
  assert (result.k, result.context, result.num_candidates) == (2, 0, 7)
  # Lower is better turns the choice around.
  assert aggregate(good + bad, [0.9, 0.91, 0.92, 0.2, 0.21, 0.22, 0.23], k=2,
                   lower_is_better=True).layout == Layout.parse("MMAA")


def test_aggregate_counts_a_duplicated_layout_once_with_its_best_score():
  layouts = ["AM", "2A", "AM", "AM", "MA", "MM"]
  scores = [1.0, 1.1, 5.0, 5.0, 5.1, 5.2]
  result = aggregate(layouts, scores, k=2, lower_is_better=True)
  # "AM" keeps its best score 1.0 and counts once; its copies at 5.0 are dropped.
  assert result.members == (Layout.parse("AM"), Layout.parse("AA"))
  assert result.member_scores == (1.0, 1.1)
  assert result.num_candidates == 4
  assert result.layout.text == "AA"  # A:A at layer 0; M:A tie at layer 1 -> A
  # Higher is better: "AM" keeps 5.0 once, so it does not outvote "MA" and "MM" at layer 0
  # (with its two copies counted, the vote would be "AM").
  higher = aggregate(layouts, scores, k=2, lower_is_better=False)
  assert higher.members == (Layout.parse("MM"), Layout.parse("MA"), Layout.parse("AM"))
  assert higher.member_scores == (5.2, 5.1, 5.0)
  assert higher.layout.text == "MM"


def test_aggregate_passes_the_context_to_the_vote():
  layouts = ["AAA", "AAM", "MMA", "MMM", "MAS"]
  # N_0: M (3 of 5), then A (3 of 5), then an A:M tie -> A. N_1: after M, M (2 of 3), then A:M tie -> A.
  assert aggregate(layouts, [0.0] * 5, k=1, lower_is_better=True).layout.text == "MAA"
  assert aggregate(layouts, [0.0] * 5, k=1, context=1, lower_is_better=True).layout.text == "MMA"


def test_describe_names_the_vote_cluster_and_result():
  result = aggregate(["2A+2M", "AMMM", "MMMM"], [0.5, 0.55, 3.0], k=2, lower_is_better=True)
  text = result.describe()
  assert text.startswith("N_0 vote of the top cluster (2 of 3 distinct layouts, k=2, lower is better")
  assert "0.5..0.55" in text
  assert text.endswith(": 2A+2M (2A:2M)")  # layer 1 is an A:M tie -> A


@pytest.mark.parametrize("layouts, scores, fragment", [
    ([], [], "no layouts"),
    (["AM", "MA"], [1.0], "2 layouts but 1 scores"),
    (["AM", "MA"], [1.0, float("nan")], "must be finite"),
    (["AM", "MAM"], [1.0, 2.0], r"same depth.*\[2, 3\]"),
    (["AX"], [1.0], "unknown primitive"),
])
def test_aggregate_errors(layouts, scores, fragment):
  with pytest.raises(ValueError, match=fragment):
    aggregate(layouts, scores, lower_is_better=True)
