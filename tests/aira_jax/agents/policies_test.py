"""Tests for `aira_jax.agents.policies`: one-shot, greedy, MCTS, evolutionary, the registry, and the analysis
schedule of `aira_jax.agents.action`."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.agents.action import analysis_due
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.policies import (Action, EvolutionaryPolicy, GreedyPolicy, MCTSPolicy, OneShotPolicy, accept,
                                      cap_island, island_assignment, island_populations, make_policy,
                                      sample_parents, softmax_weights, uct_score)


def _node(node_id, operator="draft", parents=(), metric=None, buggy=False, lower=False):
  return Node(id=node_id, operator=operator, parent_ids=parents, metric=metric, is_buggy=buggy,
              lower_is_better=lower, payload="2A+2M")


def _drafts(metrics, lower=False):
  journal = Journal()
  for i, metric in enumerate(metrics):
    journal.append(_node(f"d{i}", metric=metric, buggy=metric is None, lower=lower))
  return journal


# One-shot and greedy.


def test_one_shot_always_drafts():
  assert OneShotPolicy().next_action(_drafts([1.0] * 7), random.Random(0)) == Action("draft")


def test_greedy_drafts_until_num_drafts_then_improves_the_best():
  policy = GreedyPolicy(debug_prob=0.0)
  journal = _drafts([0.3, 0.9, 0.1, 0.5])
  assert policy.next_action(journal, random.Random(0)) == Action("draft")
  journal.append(_node("d4", metric=0.2))
  assert policy.next_action(journal, random.Random(0)) == Action("improve", ("d1",))


def test_greedy_improves_the_best_when_lower_is_better():
  journal = _drafts([0.3, 0.9, 0.1, 0.5, 0.2], lower=True)
  assert GreedyPolicy(debug_prob=0.0).next_action(journal, random.Random(0)) == Action("improve", ("d2",))


def test_greedy_drafts_again_when_nothing_is_good():
  journal = _drafts([None] * 5)
  assert GreedyPolicy(debug_prob=0.0).next_action(journal, random.Random(0)) == Action("draft")


def _debug_chain_journal(chain_length):
  journal = _drafts([None, 0.4, 0.6, 0.5, 0.2])
  parent = "d0"
  for i in range(chain_length):
    journal.append(_node(f"g{i}", "debug", (parent,), buggy=True))
    parent = f"g{i}"
  return journal, parent


def test_greedy_debug_respects_max_debug_depth():
  policy = GreedyPolicy(debug_prob=1.0, max_debug_depth=3)
  journal, leaf = _debug_chain_journal(3)
  assert journal.debug_depth(leaf) == 3
  assert policy.next_action(journal, random.Random(0)) == Action("debug", (leaf,))
  journal, leaf = _debug_chain_journal(4)  # a chain of 4 debugs is not chosen again
  assert policy.next_action(journal, random.Random(0)) == Action("improve", ("d2",))


def test_greedy_debug_prob_zero_never_debugs_and_one_always_does():
  journal, leaf = _debug_chain_journal(1)
  for seed in range(200):
    assert GreedyPolicy(debug_prob=0.0).next_action(journal, random.Random(seed)).operator == "improve"
    assert GreedyPolicy(debug_prob=1.0).next_action(journal, random.Random(seed)) == Action("debug", (leaf,))


def test_greedy_debug_prob_half_mixes_and_picks_buggy_leaves_uniformly():
  journal = _drafts([None, None, 0.6, 0.5, 0.2])
  operators = [GreedyPolicy().next_action(journal, random.Random(s)) for s in range(400)]
  debugs = [a.parent_ids[0] for a in operators if a.operator == "debug"]
  assert 150 < len(debugs) < 250
  assert set(debugs) == {"d0", "d1"} and 0.35 < debugs.count("d0") / len(debugs) < 0.65


# MCTS.


def test_uct_score_against_hand_computed_values():
  # 0.5 + 0.25 * sqrt(ln 10 / 2) = 0.5 + 0.25 * 1.0729830 = 0.7682458
  assert uct_score(0.5, 10, 2, 0.25) == pytest.approx(0.7682458, abs=1e-6)
  assert uct_score(0.3, 1, 4, 0.25) == pytest.approx(0.3)  # ln 1 = 0: no bonus
  assert uct_score(0.0, 5, 0, 0.25) == math.inf


def test_mcts_expands_the_root_with_drafts():
  assert MCTSPolicy().next_action(Journal(), random.Random(0)) == Action("draft")
  assert MCTSPolicy().next_action(_drafts([1.0, 0.5, 0.2, 0.7]), random.Random(0)) == Action("draft")


def test_mcts_improves_the_best_draft_once_the_root_is_full():
  assert MCTSPolicy().next_action(_drafts([0.1, 0.9, 0.2, 0.7, 0.3]), random.Random(0)) == Action("improve", ("d1",))
  lower = _drafts([0.1, 0.9, 0.2, 0.7, 0.3], lower=True)
  assert MCTSPolicy().next_action(lower, random.Random(0)) == Action("improve", ("d0",))


def _explored_tree():
  # d0 (1.0) has 5 children scored 0.5; d1 (0.5) has none; d2..d4 score 0.
  journal = _drafts([1.0, 0.5, 0.0, 0.0, 0.0])
  for i in range(5):
    journal.append(_node(f"c{i}", "improve", ("d0",), metric=0.5))
  return journal


def test_mcts_prefers_the_high_uct_less_visited_branch():
  # Root N = 10. d0: Q = (1 + 5 * 0.5) / 6 = 0.5833, N = 6 -> UCT 0.5833 + 0.25 * sqrt(ln 10 / 6) = 0.7382.
  # d1: Q = 0.5, N = 1 -> UCT 0.5 + 0.25 * sqrt(ln 10) = 0.8794: the less visited branch wins.
  journal = _explored_tree()
  assert uct_score(3.5 / 6, 10, 6, 0.25) == pytest.approx(0.7382, abs=1e-4)
  assert uct_score(0.5, 10, 1, 0.25) == pytest.approx(0.8794, abs=1e-4)
  assert MCTSPolicy().next_action(journal, random.Random(0)) == Action("improve", ("d1",))


def test_mcts_without_exploration_descends_the_best_subtree():
  journal = _explored_tree()
  policy = MCTSPolicy(uct_c=0.0)
  assert [n.id for n in policy.select_path(journal)] == ["d0", "c0"]
  assert policy.next_action(journal, random.Random(0)) == Action("improve", ("c0",))


def test_mcts_debugs_a_buggy_child_then_follows_the_debug_chain():
  policy = MCTSPolicy(num_children=1)
  journal = _drafts([0.5])
  journal.append(_node("c0", "improve", ("d0",), buggy=True))
  assert policy.next_action(journal, random.Random(0)) == Action("debug", ("c0",))
  journal.append(_node("g0", "debug", ("c0",), buggy=True))
  assert policy.next_action(journal, random.Random(0)) == Action("debug", ("g0",))


# Evolutionary.


def _population(metrics, lower=False):
  return [_node(f"p{i}", metric=m, buggy=m is None, lower=lower) for i, m in enumerate(metrics)]


def test_softmax_selection_frequencies_match_the_weights():
  population = _population([0.0, 5.0, 10.0])  # normalised fitness 0, 0.5, 1
  total = 1 + math.exp(0.5) + math.exp(1.0)
  expected = [1 / total, math.exp(0.5) / total, math.exp(1.0) / total]
  assert softmax_weights(population, 1.0, False) == pytest.approx(expected)
  assert softmax_weights(population, 1.0, True) == pytest.approx(expected[::-1])
  rng = random.Random(1234)
  draws = 20_000
  counts = {n.id: 0 for n in population}
  for _ in range(draws):
    counts[sample_parents(population, 1, rng, 1.0, False)[0].id] += 1
  for node, p in zip(population, expected):
    assert counts[node.id] / draws == pytest.approx(p, abs=0.015)


def test_low_temperature_sharpens_selection_and_two_parents_are_distinct():
  population = _population([0.0, 5.0, 10.0])
  assert softmax_weights(population, 0.05, False)[2] > 0.99
  rng = random.Random(0)
  for _ in range(50):
    first, second = sample_parents(population, 2, rng, 1.0, False)
    assert first.id != second.id


def test_accept_needs_to_beat_the_island_average():
  island = _population([1.0, 2.0, 3.0])  # mean 2.0
  assert accept(island, _node("c", "draft", metric=2.5))
  assert not accept(island, _node("c", "draft", metric=2.0))
  assert not accept(island, _node("c", "draft", metric=1.5))
  assert accept(_population([1.0, 2.0, 3.0], lower=True), _node("c", metric=1.5, lower=True))
  assert not accept(island, _node("c", buggy=True))
  assert accept([], _node("c", metric=-100.0))


def test_cap_island_drops_the_worst_and_newer_ties_first():
  island = _population([3.0, 1.0, 2.0, 1.0])
  assert [n.id for n in cap_island(island, 3)] == ["p0", "p1", "p2"]
  assert [n.id for n in cap_island(island, 2)] == ["p0", "p2"]
  assert [n.id for n in cap_island(_population([3.0, 1.0, 2.0], lower=True), 2)] == ["p1", "p2"]


def test_islands_are_dealt_round_robin_and_inherited():
  journal = _drafts([1.0, 2.0, 3.0, 4.0])
  journal.append(_node("c", "improve", ("d1",), metric=5.0))
  journal.append(_node("x", "crossover", ("d2", "d0"), metric=0.5))
  assert island_assignment(journal, 2) == {"d0": 0, "d1": 1, "d2": 0, "d3": 1, "c": 1, "x": 0}
  populations = island_populations(journal, 2, max_island_size=20)
  assert [n.id for n in populations[0]] == ["d0", "d2"]  # x (0.5) is below island 0's mean (2.0)
  assert [n.id for n in populations[1]] == ["d1", "d3", "c"]
  capped = island_populations(journal, 2, max_island_size=2)
  assert [n.id for n in capped[1]] == ["d3", "c"]


def test_evolutionary_drafts_one_generation_per_island_first():
  policy = EvolutionaryPolicy()
  assert policy.next_action(_drafts([1.0] * 9), random.Random(0)) == Action("draft")
  action = policy.next_action(_drafts([float(i) for i in range(10)]), random.Random(0))
  assert action.operator in ("improve", "crossover")


def test_evolutionary_crossover_only_after_enough_generations():
  policy = EvolutionaryPolicy(num_islands=1, individuals_per_generation=2, crossover_after_generations=2,
                              crossover_prob=1.0)
  journal = _drafts([1.0, 2.0])  # one generation
  assert policy.generations_completed(journal, 0) == 1
  for seed in range(50):
    assert policy.next_action(journal, random.Random(seed)).operator == "improve"
  journal.append(_node("c0", "improve", ("d1",), metric=3.0))
  journal.append(_node("c1", "improve", ("c0",), buggy=True))
  assert policy.generations_completed(journal, 0) == 2
  for seed in range(50):
    action = policy.next_action(journal, random.Random(seed))
    assert action.operator == "crossover"
    assert len(set(action.parent_ids)) == 2 and set(action.parent_ids) <= {"d0", "d1", "c0"}


def test_evolutionary_crossover_prob_zero_never_crosses():
  policy = EvolutionaryPolicy(num_islands=1, individuals_per_generation=1, crossover_after_generations=0,
                              crossover_prob=0.0)
  journal = _drafts([1.0, 2.0, 3.0])
  assert {policy.next_action(journal, random.Random(s)).operator for s in range(50)} == {"improve"}


def test_evolutionary_targets_the_smallest_live_island():
  policy = EvolutionaryPolicy(num_islands=2, individuals_per_generation=1, crossover_prob=0.0)
  journal = _drafts([1.0, 2.0])
  journal.append(_node("c", "improve", ("d0",), metric=3.0))  # island 0 now has 2 nodes, island 1 has 1
  for seed in range(20):
    assert policy.next_action(journal, random.Random(seed)) == Action("improve", ("d1",))


# The analysis schedule.


def test_analysis_is_due_every_n_steps_after_the_latest_step():
  journal = _drafts([0.1, None, 0.3])
  assert analysis_due(journal.nodes, 0) is None  # never
  assert analysis_due(journal.nodes[:2], 3) is None
  assert analysis_due(journal.nodes, 3) == Action("analyze", ("d2",))
  assert analysis_due(journal.nodes, 2) == Action("analyze", ("d2",))  # overdue: still once, on the latest
  journal.append(_node("a1", "analyze", ("d2",)))
  assert analysis_due(journal.nodes, 1) is None  # nothing new since the analysis
  journal.append(_node("d3", metric=0.2))
  assert analysis_due(journal.nodes, 1) == Action("analyze", ("d3",))
  assert analysis_due(journal.nodes, 2) is None
  journal.append(_node("a2", "analyze", ("d3",), buggy=True))  # a failed analysis still restarts the count
  assert analysis_due(journal.nodes, 1) is None
  assert analysis_due([], 1) is None
  with pytest.raises(ValueError, match="every must be >= 0"):
    analysis_due(journal.nodes, -1)


# Registry.


def test_make_policy_builds_by_name_with_overrides():
  assert make_policy("greedy", debug_prob=1.0) == GreedyPolicy(debug_prob=1.0)
  assert make_policy("mcts") == MCTSPolicy(uct_c=0.25, num_children=5)
  assert make_policy("one_shot") == OneShotPolicy()
  assert make_policy("evolutionary", num_islands=3).num_islands == 3


def test_make_policy_rejects_unknown_names_and_options():
  with pytest.raises(ValueError, match="evolutionary.*greedy.*mcts.*one_shot"):
    make_policy("beam")
  with pytest.raises(ValueError, match="debug_probability"):
    make_policy("greedy", debug_probability=0.2)
  with pytest.raises(ValueError, match="debug_prob"):
    make_policy("greedy", debug_prob=1.5)


# Property: every policy returns a well-formed action about nodes that exist.

_step = st.tuples(st.sampled_from(["draft", "improve", "debug", "crossover"]), st.integers(0, 10**6),
                  st.one_of(st.none(), st.floats(-10, 10)))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(_step, max_size=30), seed=st.integers(0, 1000), lower=st.booleans())
def test_property_actions_name_existing_suitable_parents(steps, seed, lower):
  journal = Journal()
  for i, (operator, pick, metric) in enumerate(steps):
    ids = [n.id for n in journal.nodes]
    if operator != "draft" and len(ids) < 2:
      operator = "draft"
    if operator == "draft":
      parents = ()
    elif operator == "crossover":
      parents = (ids[pick % len(ids)], ids[(pick + 1) % len(ids)])
    else:
      parents = (ids[pick % len(ids)],)
    journal.append(_node(f"n{i}", operator, parents, metric=metric, buggy=metric is None, lower=lower))
  for name in ("one_shot", "greedy", "mcts", "evolutionary"):
    action = make_policy(name).next_action(journal, random.Random(seed))
    assert all(p in journal for p in action.parent_ids)
    if action.operator == "debug":
      assert journal.get(action.parent_ids[0]).is_buggy
    if action.operator == "improve" and name == "greedy":
      assert action.parent_ids[0] == journal.best(1)[0].id
