"""Tests for aira_jax.compose.aggregate: 1-D k-means clusters, the N_c vote and its score-based tie-breaking,
de-duplication of pooled results, the merge and best-layout rules for small clusters, the report helpers
(describe, member_rows) and the input errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.compose import aggregate as aggregate_module
from aira_jax.compose.aggregate import (MIN_VOTERS, Aggregation, aggregate, differing_layers,
                                        ranked_clusters, top_cluster, vote)
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
  assert result.num_candidates == 4
  # The top cluster {AM 1.0, AA 1.1} is too small to vote, so the next cluster {MA 5.1, MM 5.2} joins it.
  assert result.rule == "vote (merged 2 clusters)"
  assert result.members == tuple(Layout.parse(t) for t in ["AM", "AA", "MA", "MM"])
  assert result.member_scores == (1.0, 1.1, 5.1, 5.2)
  # Layer 0: A (1.0, 1.1) vs M (5.1, 5.2), a 2:2 tie won by A's best voter 1.0. Layer 1: M (1.0, 5.2) vs
  # A (1.1, 5.1), a tie won by M's best voter 1.0. (The old alphabetic tie-break said "AA".)
  assert result.layout.text == "AM"
  # Higher is better: "AM" keeps 5.0 once, so it does not outvote "MA" and "MM" at layer 0
  # (with its two copies counted, the vote would be "AM").
  higher = aggregate(layouts, scores, k=2, lower_is_better=False)
  assert higher.rule == "vote"
  assert higher.members == (Layout.parse("MM"), Layout.parse("MA"), Layout.parse("AM"))
  assert higher.member_scores == (5.2, 5.1, 5.0)
  assert higher.layout.text == "MM"


def test_aggregate_passes_the_context_to_the_vote():
  layouts = ["AAA", "AAM", "MMA", "MMM", "MAS"]
  # N_0: M (3 of 5), then A (3 of 5), then an A:M tie -> A. N_1: after M, M (2 of 3), then A:M tie -> A.
  assert aggregate(layouts, [0.0] * 5, k=1, lower_is_better=True).layout.text == "MAA"
  assert aggregate(layouts, [0.0] * 5, k=1, context=1, lower_is_better=True).layout.text == "MMA"


def test_describe_names_the_vote_cluster_and_result():
  result = aggregate(["2A+2M", "AMMM", "AAAM", "MMMM"], [0.5, 0.55, 0.52, 3.0], k=2, lower_is_better=True)
  text = result.describe()
  assert result.rule == "vote"
  assert text.startswith("N_0 vote of the top cluster (3 of 4 distinct layouts, k=2, lower is better")
  assert "0.5..0.55" in text
  assert text.endswith(": 2A+2M (2A:2M)")  # layer 1: A (AAMM, AAAM) 2 : M (AMMM) 1; layer 2: M 2 : A 1


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


# The real failure: a two-member top cluster whose per-layer votes tie wherever the two differ.
BEST_OF_TWO = "AAAMMMMMMMMMMMMM"    # 3A+13M, the best score
WORSE_OF_TWO = "AMMAMMAAMAMAMMAM"   # 7A:9M; differs from the best at layers 1, 2, 3, 6, 7, 9, 11 and 14


def test_the_two_member_example_no_longer_drifts_towards_attention():
  # Alphabetic ties sent all 8 differing layers to A: 9A:7M, more attention than either member.
  assert vote([BEST_OF_TWO, WORSE_OF_TWO]).ratio_text() == "9A:7M"
  assert differing_layers(BEST_OF_TWO, WORSE_OF_TWO) == 8
  # With scores every differing layer is a 1:1 tie won by the better member, and the layers where they agree
  # are that member's too, so the vote is exactly the better layout, in either score direction and for N_c.
  for context in (0, 1, 2):
    assert vote([BEST_OF_TWO, WORSE_OF_TWO], context=context, scores=[0.1719, 0.1750],
                 lower_is_better=True).text == BEST_OF_TWO
    assert vote([BEST_OF_TWO, WORSE_OF_TWO], context=context, scores=[0.1719, 0.1650],
                 lower_is_better=False).text == BEST_OF_TWO
    assert vote([BEST_OF_TWO, WORSE_OF_TWO], context=context, scores=[0.1719, 0.1650],
                 lower_is_better=True).text == WORSE_OF_TWO
  # `aggregate` does not even vote: two distinct layouts are too few, so the best one is used as is.
  result = aggregate([WORSE_OF_TWO, BEST_OF_TWO], [0.1750, 0.1719], lower_is_better=True)
  assert result.layout.text == BEST_OF_TWO
  assert result.rule == "best layout as is (only 2 distinct layouts; a vote needs at least 3)"
  assert not result.voted and result.clusters_voted == 0
  assert result.members == (Layout.parse(BEST_OF_TWO), Layout.parse(WORSE_OF_TWO))
  assert result.member_differences() == (0, 8)


def test_score_ties_go_to_the_better_voters_in_either_direction():
  assert vote(["AM", "MA"], scores=[1.0, 2.0], lower_is_better=True).text == "AM"
  assert vote(["AM", "MA"], scores=[1.0, 2.0], lower_is_better=False).text == "MA"
  assert vote(["S", "M"], scores=[0.1, 0.2], lower_is_better=True).text == "S"
  # A real majority still wins over better scores: the tie-break only decides ties.
  assert vote(["A", "M", "M"], scores=[0.1, 0.9, 0.8], lower_is_better=True).text == "M"
  # A three-way 1:1:1 tie goes to the single best voter.
  assert vote(["A", "M", "S"], scores=[0.3, 0.2, 0.1], lower_is_better=True).text == "S"
  assert vote(["A", "M", "S"], scores=[0.3, 0.2, 0.1], lower_is_better=False).text == "A"


def test_score_ties_compare_best_then_mean_then_alphabet():
  layouts = ["A", "A", "M", "M"]
  # Lower is better: both best voters score 1.0; the means are A 2.0, M 1.5, so M.
  assert vote(layouts, scores=[1.0, 3.0, 1.0, 2.0], lower_is_better=True).text == "M"
  # Higher is better, same scores: A's best voter (3.0) beats M's (2.0).
  assert vote(layouts, scores=[1.0, 3.0, 1.0, 2.0], lower_is_better=False).text == "A"
  # Same best (3.0), means A 2.0 and M 2.5: M.
  assert vote(layouts, scores=[1.0, 3.0, 2.0, 3.0], lower_is_better=False).text == "M"
  # Same best and same mean: the alphabet decides, deterministically, in both directions.
  assert vote(layouts, scores=[1.0, 3.0, 3.0, 1.0], lower_is_better=True).text == "A"
  assert vote(["M", "M", "A", "A"], scores=[1.0, 3.0, 3.0, 1.0], lower_is_better=False).text == "A"


def test_context_vote_breaks_ties_among_the_matching_layouts_only():
  layouts = ["AA", "AM", "AA", "AM", "MA", "MM"]
  scores = [3.0, 2.0, 5.0, 6.0, 1.0, 7.0]
  # Layer 0: A 4 : M 2. Layer 1, N_0: A (3.0, 5.0, 1.0) 3 : M (2.0, 6.0, 7.0) 3, A has the best voter 1.0.
  assert vote(layouts, scores=scores, lower_is_better=True).text == "AA"
  # N_1 votes layer 1 among the A-first layouts only: A (3.0, 5.0) 2 : M (2.0, 6.0) 2, M has the best voter.
  assert vote(layouts, context=1, scores=scores, lower_is_better=True).text == "AM"


def test_vote_score_errors():
  with pytest.raises(ValueError, match="without lower_is_better"):
    vote(["AM", "MA"], scores=[1.0, 2.0])
  with pytest.raises(ValueError, match="2 layouts but 1 scores"):
    vote(["AM", "MA"], scores=[1.0], lower_is_better=True)
  with pytest.raises(ValueError, match="2 layouts but 0 scores"):
    vote(["AM", "MA"], scores=[], lower_is_better=True)
  with pytest.raises(ValueError, match="must be finite"):
    vote(["AM", "MA"], scores=[1.0, float("nan")], lower_is_better=True)


def test_ranked_clusters_are_best_first():
  scores = [0.10, 0.11, 0.5, 0.52, 2.0, 2.05, 2.1]
  assert ranked_clusters(scores, k=3, lower_is_better=True) == [[0, 1], [2, 3], [4, 5, 6]]
  assert ranked_clusters(scores, k=3, lower_is_better=False) == [[4, 5, 6], [2, 3], [0, 1]]
  assert top_cluster(scores, k=3, lower_is_better=True) == [0, 1]


def test_a_small_top_cluster_is_merged_with_the_next_one():
  layouts = ["AAAM", "AAMA", "AMMM", "MAMM", "MMMA", "MMAA", "MMMM"]
  scores = [0.10, 0.11, 0.5, 0.52, 2.0, 2.05, 2.1]
  result = aggregate(layouts, scores, k=3, lower_is_better=True)
  # Top cluster {AAAM, AAMA} has 2 < 3 members; the next cluster {AMMM, MAMM} joins; the worst does not.
  assert MIN_VOTERS == 3
  assert result.rule == "vote (merged 2 clusters)"
  assert (result.clusters_voted, result.top_cluster_size) == (2, 2)
  assert result.members == tuple(Layout.parse(t) for t in ["AAAM", "AAMA", "AMMM", "MAMM"])
  # Layer 0: A 3 : M 1. Layer 1: A (0.10, 0.52) 2 : M (0.11, 0.5) 2, a tie won by A's 0.10.
  # Layer 2: M 3 : A 1. Layer 3: M 3 : A 1.
  assert result.layout.text == "AAMM"
  assert result.member_differences() == (1, 1, 1, 1)


def test_merging_goes_on_until_there_are_enough_voters():
  layouts = ["AAMM", "AMMM", "MAMM", "AMAM", "MMMM", "MMMA", "MMAA"]
  scores = [0.1, 1.0, 2.0, 2.01, 5.0, 5.01, 5.02]
  clusters = ranked_clusters(scores, k=4, lower_is_better=True)
  assert clusters == [[0], [1], [2, 3], [4, 5, 6]]
  result = aggregate(layouts, scores, k=4, lower_is_better=True)
  # 1 member, then 1 + 1 = 2, then 1 + 1 + 2 = 4 >= 3: three clusters vote.
  assert result.rule == "vote (merged 3 clusters)"
  assert (result.clusters_voted, result.top_cluster_size, len(result.members)) == (3, 1, 4)
  # Layer 0: A (0.1, 1.0, 2.01) 3 : M 1. Layer 1: A (0.1, 2.0) 2 : M (1.0, 2.01) 2, A's 0.1 wins.
  # Layer 2: M 3 : A 1. Layer 3: M 4.
  assert result.layout.text == "AAMM"
  text = result.describe()
  assert text.startswith("N_0 vote of the top 3 clusters merged, because the top cluster had only 1 distinct "
                         "layout and a vote needs at least 3 (4 of 7 distinct layouts, k=4, lower is better")


def test_a_top_cluster_with_enough_members_is_not_merged():
  result = aggregate(["AAMM", "AAMA", "AMMM", "MMAA"], [0.1, 0.11, 0.12, 3.0], k=2, lower_is_better=True)
  assert (result.rule, result.clusters_voted, result.top_cluster_size) == ("vote", 1, 3)
  assert result.voted


@pytest.mark.parametrize("layouts, scores, expected, reason", [
    (["MA"], [0.4], "MA", "only 1 distinct layout"),
    (["AM", "MA"], [0.4, 0.3], "MA", "only 2 distinct layouts"),
    (["AM", "MA", "AM", "MA"], [0.4, 0.3, 0.2, 0.9], "AM", "only 2 distinct layouts"),  # AM's best is 0.2
])
def test_fewer_than_three_distinct_layouts_use_the_best_as_is(layouts, scores, expected, reason):
  result = aggregate(layouts, scores, lower_is_better=True)
  assert result.layout.text == expected
  assert result.rule == f"best layout as is ({reason}; a vote needs at least 3)"
  assert not result.voted
  verb = "is" if reason.startswith("only 1 ") else "are"
  assert result.describe().startswith(f"Best layout as is, no vote, because there {verb} {reason} and a vote "
                                      "needs at least 3 (")
  assert "k=" not in result.describe()


def test_member_rows_put_the_aggregate_first_and_count_differing_layers():
  layouts = ["AAAM", "AAMA", "AMMM", "MAMM", "MMMA", "MMAA", "MMMM"]
  scores = [0.10, 0.11, 0.5, 0.52, 2.0, 2.05, 2.1]
  rows = aggregate(layouts, scores, k=3, lower_is_better=True).member_rows()
  assert rows == [
      {"row": "aggregate", "layout": "2A+2M", "ratio": "2A:2M", "score": "not evaluated", "differs at": 0},
      {"row": "member 1", "layout": "3A+1M", "ratio": "3A:1M", "score": 0.10, "differs at": 1},
      {"row": "member 2", "layout": "2A+1M+1A", "ratio": "3A:1M", "score": 0.11, "differs at": 1},
      {"row": "member 3", "layout": "1A+3M", "ratio": "1A:3M", "score": 0.5, "differs at": 1},
      {"row": "member 4", "layout": "1M+1A+2M", "ratio": "1A:3M", "score": 0.52, "differs at": 1},
  ]


def test_member_rows_give_the_aggregate_a_score_when_it_is_a_member():
  rows = aggregate([BEST_OF_TWO, WORSE_OF_TWO], [0.1719, 0.1750], lower_is_better=True).member_rows()
  assert [row["row"] for row in rows] == ["aggregate", "member 1", "member 2"]
  assert rows[0] == {"row": "aggregate", "layout": "3A+13M", "ratio": "3A:13M", "score": 0.1719, "differs at": 0}
  assert [(row["ratio"], row["score"], row["differs at"]) for row in rows[1:]] == [
      ("3A:13M", 0.1719, 0), ("7A:9M", 0.1750, 8)]


def test_differing_layers():
  assert differing_layers("AMA", "AMA") == 0
  assert differing_layers("2A+1M", Layout.parse("MMM")) == 2
  with pytest.raises(ValueError, match="same depth"):
    differing_layers("AM", "AMA")
