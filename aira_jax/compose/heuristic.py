"""The built-in heuristic agent of COMPOSE: proposes layouts with seeded randomness, no LLM and no network.

It lets the whole search pipeline (policies, journal, evaluator, reports) run offline and gives the LLM agents
a baseline to beat. Three operators, all deterministic given a seeded `random.Random`:

- `draft(space, depth, rng)`: a random layout from a prior (see `ATTENTION_PRIOR`): the attention fraction is
  drawn from Beta(8, 12) (mean 0.40, about two thirds of draws between 0.30 and 0.50), so drafts sit near the
  attention:MLP ratios found by AIRA and Composer (7:9, 2:5) rather than at the extremes. With at least two
  layers, attention gets at least one layer and leaves at least one to the others. The non-attention layers
  are split among the other primitives by a symmetric Dirichlet(2) draw (a space without A splits all layers
  this way).
  The layers are then placed, with equal chance, either interleaved (each primitive spread evenly through the
  stack) or in runs (each primitive cut into 1-3 runs, the runs shuffled).
- `improve(layout, space, rng)`: one mutation from `layout_mutations` (flip, swap, move_run, resize_run,
  shift_ratio), kind chosen at random among those that can change the layout. The result always has the
  same depth and stays inside the space, and differs from the input unless no layout of that depth but the
  input exists in the space (a space of one primitive), when the input comes back unchanged.
- `crossover(a, b, rng)`: per-layer uniform mix of two parents of equal depth.

`HeuristicOperator.propose(action, journal, rng)` maps a policy's `Action` onto these and returns a one-line
plan with the layout text, the same contract the LLM operators follow. `HeuristicOperator.analyze` writes the
agent's scheduled analysis: the journal's statistics (compose/analysis.py) as text and the directions they
suggest. Its own proposals do not read the analysis: the statistics are what it would act on, and a prior that
drifts with them would make the agent's search depend on the analysis schedule.
"""

from __future__ import annotations

import random

from aira_jax.agents.ensemble import Proposal
from aira_jax.compose.analysis import analyze_layouts
from aira_jax.compose.layout_mutations import (MUTATION_KINDS, MUTATIONS, Mutation, applicable_kinds,
                                               space_symbols)
from aira_jax.layout import Layout, as_layout

ATTENTION_PRIOR = (8.0, 12.0)
"""Beta(alpha, beta) prior on the fraction of attention layers in a draft (mean 0.40)."""

ATTENTION_RATIO_RANGE = (0.30, 0.50)
"""Where the mean attention fraction of many drafts lies (checked by the tests)."""

OTHER_SHARE_CONCENTRATION = 2.0
"""Symmetric Dirichlet concentration splitting the non-attention layers among the other primitives."""

MAX_RUNS_PER_PRIMITIVE = 3


def _split_counts(total: int, symbols: list[str], rng: random.Random) -> dict[str, int]:
  """`total` layers shared among `symbols` by a Dirichlet draw, rounded by largest remainder."""
  if not symbols or total == 0:
    return {s: 0 for s in symbols}
  weights = [rng.gammavariate(OTHER_SHARE_CONCENTRATION, 1.0) for _ in symbols]
  shares = [total * w / sum(weights) for w in weights]
  counts = [int(share) for share in shares]
  by_remainder = sorted(range(len(symbols)), key=lambda i: shares[i] - counts[i], reverse=True)
  for i in by_remainder[:total - sum(counts)]:
    counts[i] += 1
  return dict(zip(symbols, counts))


def draft_counts(space, depth: int, rng: random.Random) -> dict[str, int]:
  """Layers per primitive for a draft, from the prior described in the module docstring."""
  if depth < 1:
    raise ValueError(f"depth must be at least 1, got {depth}")
  symbols = space_symbols(space)
  if len(symbols) == 1:
    return {symbols[0]: depth}
  if "A" not in symbols:
    return _split_counts(depth, symbols, rng)
  attention = round(rng.betavariate(*ATTENTION_PRIOR) * depth)
  if depth >= 2:
    attention = min(max(attention, 1), depth - 1)
  others = [s for s in symbols if s != "A"]
  counts = {"A": attention, **_split_counts(depth - attention, others, rng)}
  return counts


def _interleaved(counts: dict[str, int], rng: random.Random) -> list[str]:
  """Each primitive's layers at evenly spaced, jittered positions through the stack."""
  keyed = [((k + rng.random()) / n, symbol) for symbol, n in counts.items() for k in range(n)]
  return [symbol for _, symbol in sorted(keyed)]


def _in_runs(counts: dict[str, int], rng: random.Random) -> list[str]:
  """Each primitive cut into 1..3 runs of random lengths, then all runs shuffled."""
  runs = []
  for symbol, n in counts.items():
    if n == 0:
      continue
    pieces = rng.randint(1, min(n, MAX_RUNS_PER_PRIMITIVE))
    cuts = sorted(rng.sample(range(1, n), pieces - 1))
    bounds = [0, *cuts, n]
    runs += [(symbol, bounds[i + 1] - bounds[i]) for i in range(pieces)]
  rng.shuffle(runs)
  return [symbol for symbol, length in runs for _ in range(length)]


def draft_with_plan(space, depth: int, rng: random.Random) -> tuple[Layout, str]:
  """A draft and its one-line plan ("draft 6A:10M interleaved")."""
  counts = draft_counts(space, depth, rng)
  style = "interleaved" if rng.random() < 0.5 else "in runs"
  symbols = _interleaved(counts, rng) if style == "interleaved" else _in_runs(counts, rng)
  layout = Layout(tuple(symbols))
  return layout, f"draft {layout.ratio_text()} {style}: {layout.run_length()}"


def draft(space, depth: int, rng: random.Random) -> Layout:
  """A random valid layout of `depth` layers inside `space`, from the prior in the module docstring."""
  return draft_with_plan(space, depth, rng)[0]


def mutate(layout: Layout | str, space, rng: random.Random, *, kind: str | None = None) -> Mutation:
  """One mutation of `layout` inside `space`, with its plan.

  Args:
    kind: one of `MUTATION_KINDS` to force it (raises `MutationNotApplicable`, a ValueError, when that kind
      cannot change this layout); None picks at random among the applicable kinds.

  Returns a Mutation whose layout differs from the input, except when no kind applies (a space of one
  primitive): then the input itself with kind "none".
  """
  layout = as_layout(layout)
  layout.check_space(space)
  if kind is not None:
    if kind not in MUTATIONS:
      raise ValueError(f"unknown mutation kind {kind!r}; known: {', '.join(MUTATION_KINDS)}")
    return MUTATIONS[kind](layout, space, rng)
  kinds = applicable_kinds(layout, space)
  if not kinds:
    return Mutation(layout, "none", f"no change possible: {layout.run_length()} is the only layout of depth "
                                    f"{layout.depth} in this space")
  for _ in range(8):  # every applicable kind changes the layout; the retry is a guard, not a loop that runs
    mutation = MUTATIONS[rng.choice(kinds)](layout, space, rng)
    if mutation.layout != layout:
      return mutation
  return mutation


def improve(layout: Layout | str, space, rng: random.Random, *, kind: str | None = None) -> Layout:
  """`mutate(...)`'s layout: same depth, inside `space`, different whenever possible."""
  return mutate(layout, space, rng, kind=kind).layout


def crossover(a: Layout | str, b: Layout | str, rng: random.Random) -> Layout:
  """Each layer taken from parent `a` or `b` with equal chance. ValueError if the depths differ."""
  a, b = as_layout(a), as_layout(b)
  if a.depth != b.depth:
    raise ValueError(f"crossover needs parents of equal depth, got {a.depth} and {b.depth}")
  return Layout(tuple(x if rng.random() < 0.5 else y for x, y in zip(a.symbols, b.symbols)))


class HeuristicOperator:
  """Answers a policy's `Action` with a layout, like an LLM operator but with the functions above.

  draft -> `draft`; improve -> `mutate` of the parent's layout; crossover -> `crossover` of the two parents
  (parents of different depths: a mutation of the first instead); debug -> a mutation of the nearest
  ancestor of the buggy node that is not buggy and whose layout is valid here, or a fresh draft if none is;
  analyze -> `analyze` (statistics of the journal; draws nothing from `rng`).
  """

  def __init__(self, space, depth: int):
    space_symbols(space)  # validates
    if depth < 1:
      raise ValueError(f"depth must be at least 1, got {depth}")
    self.space = space
    self.depth = depth

  def _layout_of(self, node) -> Layout:
    try:
      return Layout.parse(node.payload, space=self.space)
    except ValueError as error:
      raise ValueError(f"node {node.id}: its layout {node.payload!r} is not valid here ({error})") from None

  def _valid_layout(self, node) -> Layout | None:
    if node.is_buggy:
      return None
    try:
      layout = Layout.parse(node.payload, space=self.space)
    except ValueError:
      return None
    return layout if layout.depth == self.depth else None

  def nearest_valid_ancestor(self, journal, node_id: str):
    """The closest ancestor (breadth first over parents) that is not buggy and holds a valid layout; or None."""
    frontier, seen = list(journal.get(node_id).parent_ids), set()
    while frontier:
      next_frontier = []
      for parent_id in frontier:
        if parent_id in seen:
          continue
        seen.add(parent_id)
        parent = journal.get(parent_id)
        if self._valid_layout(parent) is not None:
          return parent
        next_frontier.extend(parent.parent_ids)
      frontier = next_frontier
    return None

  def analyze(self, action, journal, rng: random.Random) -> Proposal:
    """The analysis of `journal` (the agent's view) for an "analyze" `action`: payload = the statistics of
    `analyze_layouts`, plan = its directions. Deterministic; `rng` is not drawn from, so analysing leaves the
    agent's later proposals as they would have been."""
    del action, rng
    analysis = analyze_layouts(journal, self.space)
    return Proposal(plan=analysis.directions, payload=analysis.text)

  def propose(self, action, journal, rng: random.Random) -> tuple[str, str] | Proposal:
    """(one-line plan, layout text) for `action` (an `Action`), reading parents from `journal`; for an
    "analyze" action, `analyze`'s Proposal."""
    operator, parents = action.operator, action.parent_ids
    if operator == "analyze":
      return self.analyze(action, journal, rng)
    if operator == "draft":
      layout, plan = draft_with_plan(self.space, self.depth, rng)
      return plan, layout.text
    if operator == "improve":
      mutation = mutate(self._layout_of(journal.get(parents[0])), self.space, rng)
      return f"improve {parents[0]}: {mutation.plan}", mutation.layout.text
    if operator == "crossover":
      first, second = (self._layout_of(journal.get(p)) for p in parents)
      if first.depth != second.depth:
        mutation = mutate(first, self.space, rng)
        return (f"crossover fallback (depths {first.depth} and {second.depth} differ): improve {parents[0]}: "
                f"{mutation.plan}"), mutation.layout.text
      child = crossover(first, second, rng)
      from_first = sum(c == x != y for c, x, y in zip(child, first, second))
      differing = sum(x != y for x, y in zip(first, second))
      return (f"crossover {parents[0]} x {parents[1]}: {from_first} of {differing} differing layers from "
              f"{parents[0]}: {child.run_length()}"), child.text
    if operator == "debug":
      ancestor = self.nearest_valid_ancestor(journal, parents[0])
      if ancestor is None:
        layout, plan = draft_with_plan(self.space, self.depth, rng)
        return f"debug {parents[0]}: no valid ancestor, fresh {plan}", layout.text
      mutation = mutate(self._valid_layout(ancestor), self.space, rng)
      return f"debug {parents[0]}: mutate valid ancestor {ancestor.id}: {mutation.plan}", mutation.layout.text
    raise ValueError(f"the heuristic agent cannot perform {operator!r}")
