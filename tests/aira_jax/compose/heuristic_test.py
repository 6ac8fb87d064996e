"""Property tests of the heuristic compose agent: drafts, each mutation kind, crossover, seeding, the operator."""

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aira_jax.agents.action import Action
from aira_jax.agents.journal import Journal, Node
from aira_jax.compose import heuristic
from aira_jax.compose.layout_mutations import MUTATION_KINDS, MutationNotApplicable, applicable_kinds
from aira_jax.layout import Layout

SPACES = st.sampled_from(["AM", "AMS"])
SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def layouts_in_space(draw, max_depth=32):
  space = draw(SPACES)
  symbols = draw(st.lists(st.sampled_from(space), min_size=1, max_size=max_depth))
  return Layout(tuple(symbols)), space


def changed_positions(a: Layout, b: Layout) -> list[int]:
  return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


@settings(max_examples=150, deadline=None)
@given(space=SPACES, depth=st.integers(1, 64), seed=SEEDS)
def test_draft_is_valid_and_respects_the_space(space, depth, seed):
  layout = heuristic.draft(space, depth, random.Random(seed))
  assert layout.depth == depth
  layout.check_space(space)
  if depth >= 2:
    assert 1 <= layout.counts()["A"] <= depth - 1


def test_draft_attention_ratio_prior_over_500_drafts():
  low, high = heuristic.ATTENTION_RATIO_RANGE
  for space in ("AM", "AMS"):
    rng = random.Random(7)
    ratios = [heuristic.draft(space, 16, rng).ratios()["A"] for _ in range(500)]
    mean = sum(ratios) / len(ratios)
    assert low <= mean <= high, (space, mean)
    assert 0.0 < min(ratios) and max(ratios) < 1.0


def test_draft_uses_both_placements():
  rng = random.Random(0)
  plans = [heuristic.draft_with_plan("AM", 16, rng)[1] for _ in range(40)]
  assert any("interleaved" in p for p in plans) and any("in runs" in p for p in plans)


@settings(max_examples=200, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_improve_keeps_depth_and_space_and_changes_the_layout(case, seed):
  layout, space = case
  child = heuristic.improve(layout, space, random.Random(seed))
  assert child.depth == layout.depth
  child.check_space(space)
  assert child != layout


@pytest.mark.parametrize("depth", [1, 5])
def test_improve_returns_the_input_when_no_other_layout_exists(depth):
  layout = Layout("M" * depth)
  mutation = heuristic.mutate(layout, "M", random.Random(0))
  assert mutation.layout == layout and mutation.kind == "none" and "no change possible" in mutation.plan


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS, kind=st.sampled_from(MUTATION_KINDS))
def test_forced_mutation_keeps_depth_space_and_changes(case, seed, kind):
  layout, space = case
  assume(kind in applicable_kinds(layout, space))
  mutation = heuristic.mutate(layout, space, random.Random(seed), kind=kind)
  assert mutation.kind == kind and mutation.layout.depth == layout.depth and mutation.layout != layout
  mutation.layout.check_space(space)


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_flip_changes_one_layer_to_another_allowed_primitive(case, seed):
  layout, space = case
  mutation = heuristic.mutate(layout, space, random.Random(seed), kind="flip")
  (i,) = changed_positions(layout, mutation.layout)
  assert mutation.layout[i] in space and mutation.plan == f"flip layer {i} {layout[i]}->{mutation.layout[i]}"


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_swap_exchanges_two_different_layers(case, seed):
  layout, space = case
  assume(len(layout.runs()) >= 2)
  child = heuristic.improve(layout, space, random.Random(seed), kind="swap")
  i, j = changed_positions(layout, child)
  assert (child[i], child[j]) == (layout[j], layout[i]) and layout[i] != layout[j]


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_move_run_reinserts_one_run_elsewhere(case, seed):
  layout, space = case
  assume(len(layout.runs()) >= 2)
  child = heuristic.improve(layout, space, random.Random(seed), kind="move_run")
  runs = list(layout.runs())
  rests = [(runs[r], runs[:r] + runs[r + 1:]) for r in range(len(runs))]
  reachable = {Layout.from_runs(rest[:s] + [run] + rest[s:]) for run, rest in rests for s in range(len(runs))}
  assert child in reachable and child.counts() == layout.counts()


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_resize_run_moves_one_boundary_by_one_layer(case, seed):
  layout, space = case
  assume("resize_run" in applicable_kinds(layout, space))
  child = heuristic.improve(layout, space, random.Random(seed), kind="resize_run")
  (i,) = changed_positions(layout, child)
  # The changed layer sat at the edge of its run and took the symbol of the run next to it.
  neighbours = [layout[k] for k in (i - 1, i + 1) if 0 <= k < layout.depth]
  assert child[i] in neighbours
  # Every run survives (the shrunk one kept at least one layer), so the run count is unchanged.
  assert len(child.runs()) == len(layout.runs())


@settings(max_examples=60, deadline=None)
@given(case=layouts_in_space(), seed=SEEDS)
def test_shift_ratio_turns_most_common_into_least_common(case, seed):
  layout, space = case
  child = heuristic.improve(layout, space, random.Random(seed), kind="shift_ratio")
  (i,) = changed_positions(layout, child)
  counts = layout.counts()
  old, new = layout[i], child[i]
  assert counts[old] == max(counts[s] for s in space)
  assert counts[new] == min(counts[s] for s in space if s != old)


def test_not_applicable_mutations_raise():
  with pytest.raises(MutationNotApplicable):
    heuristic.improve(Layout("AAAA"), "AM", random.Random(0), kind="swap")
  with pytest.raises(MutationNotApplicable):
    heuristic.improve(Layout("AMAM"), "AM", random.Random(0), kind="resize_run")
  with pytest.raises(ValueError, match="unknown mutation kind"):
    heuristic.improve(Layout("AMAM"), "AM", random.Random(0), kind="grow")
  with pytest.raises(ValueError, match="outside the search space"):
    heuristic.improve(Layout("AMSM"), "AM", random.Random(0))


@settings(max_examples=100, deadline=None)
@given(space=SPACES, depth=st.integers(1, 32), seed=SEEDS)
def test_crossover_takes_each_layer_from_a_parent(space, depth, seed):
  rng = random.Random(seed)
  a, b = heuristic.draft(space, depth, rng), heuristic.draft(space, depth, rng)
  child = heuristic.crossover(a, b, rng)
  assert child.depth == depth and all(c in (x, y) for c, x, y in zip(child, a, b))


def test_crossover_mixes_and_refuses_unequal_depths():
  child = heuristic.crossover("A" * 64, "M" * 64, random.Random(1))
  assert 10 < child.counts()["A"] < 54
  with pytest.raises(ValueError, match="equal depth"):
    heuristic.crossover("AMAM", "AMA", random.Random(0))


@given(seed=SEEDS)
@settings(max_examples=20, deadline=None)
def test_same_seed_same_proposals(seed):
  def run(rng):
    a = heuristic.draft("AMS", 16, rng)
    b = heuristic.improve(a, "AMS", rng)
    return a, b, heuristic.crossover(a, b, rng)
  assert run(random.Random(seed)) == run(random.Random(seed))


def make_journal():
  journal = Journal()
  journal.append(Node(id="d1", operator="draft", payload="8A+8M", metric=0.5))
  journal.append(Node(id="d2", operator="draft", payload="AM" * 8, metric=0.6))
  journal.append(Node(id="i1", operator="improve", parent_ids=("d1",), payload="AMX", is_buggy=True, error="bad"))
  journal.append(Node(id="g1", operator="debug", parent_ids=("i1",), payload="AM", is_buggy=True, error="depth"))
  journal.append(Node(id="b0", operator="draft", payload="16Q", is_buggy=True, error="bad symbol"))
  return journal


def test_operator_maps_each_action():
  journal, operator = make_journal(), heuristic.HeuristicOperator("AM", 16)
  rng = random.Random(3)
  for action in (Action("draft"), Action("improve", ("d1",)), Action("crossover", ("d1", "d2")),
                 Action("debug", ("g1",)), Action("debug", ("b0",))):
    plan, text = operator.propose(action, journal, rng)
    layout = Layout.parse(text, space="AM")
    assert layout.depth == 16 and plan and "\n" not in plan
  plan, text = operator.propose(Action("improve", ("d1",)), journal, rng)
  assert plan.startswith("improve d1: ") and text != "A" * 8 + "M" * 8


def test_operator_debug_uses_nearest_valid_ancestor_or_drafts():
  journal, operator = make_journal(), heuristic.HeuristicOperator("AM", 16)
  assert operator.nearest_valid_ancestor(journal, "g1").id == "d1"
  assert operator.nearest_valid_ancestor(journal, "b0") is None
  plan, _ = operator.propose(Action("debug", ("g1",)), journal, random.Random(0))
  assert "valid ancestor d1" in plan
  plan, _ = operator.propose(Action("debug", ("b0",)), journal, random.Random(0))
  assert "fresh draft" in plan


def test_operator_is_deterministic_by_seed():
  journal, operator = make_journal(), heuristic.HeuristicOperator("AMS", 16)
  actions = [Action("draft"), Action("improve", ("d2",)), Action("crossover", ("d1", "d2"))]
  first = [operator.propose(a, journal, random.Random(11)) for a in actions]
  assert first == [operator.propose(a, journal, random.Random(11)) for a in actions]


def test_operator_analyses_the_journal_without_drawing_randomness():
  journal, operator = make_journal(), heuristic.HeuristicOperator("AM", 16)
  rng = random.Random(5)
  state = rng.getstate()
  proposal = operator.analyze(Action("analyze", ("b0",)), journal, rng)
  assert rng.getstate() == state  # a later proposal is what it would have been without the analysis
  assert proposal.payload.splitlines()[0] == ("5 steps: 2 scored (2 distinct layouts), 3 failed (bad x1, depth x1, "
                                              "bad symbol x1). Metric: higher is better.")
  assert "Best layouts: 0.6 1A+1M+1A+1M" in proposal.payload and "By attention share: 50-75% n=2" in proposal.payload
  assert proposal.plan.startswith("Best so far: ") and proposal.tokens == 0
  assert operator.propose(Action("analyze", ("b0",)), journal, rng) == proposal
