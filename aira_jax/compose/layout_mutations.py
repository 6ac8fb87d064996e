"""The one-step layout changes the heuristic agent's `improve` makes, each a pure function of (layout, space, rng).

Five kinds, all keeping the depth and the search space:
  flip          one layer becomes another allowed primitive;
  swap          two layers holding different primitives trade places;
  move_run      a maximal run is cut out and put back between two other runs;
  resize_run    a run grows by one layer into a neighbour run that shrinks by one (the neighbour keeps >= 1);
  shift_ratio   one layer of the most common primitive becomes the least common one of the space (possibly
                absent so far), moving the ratio one step.
Each returns a `Mutation` (new layout, kind, one-line plan) or raises `MutationNotApplicable` when the layout
offers nothing to change of that kind (e.g. swap on "AAAA").
"""

from __future__ import annotations

import dataclasses
import random

from aira_jax import primitives
from aira_jax.layout import Layout

MUTATION_KINDS = ("flip", "swap", "move_run", "resize_run", "shift_ratio")


class MutationNotApplicable(ValueError):
  """The layout has nothing this kind of mutation could change."""


@dataclasses.dataclass(frozen=True)
class Mutation:
  """A proposed change: the new layout, which kind made it and a one-line plan ("flip layer 3 M->A")."""

  layout: Layout
  kind: str
  plan: str


def space_symbols(space) -> list[str]:
  """The space's symbols in alphabet order (a stable order keeps seeded runs reproducible)."""
  allowed = primitives.normalize_space(space)
  return [s for s in primitives.alphabet() if s in allowed]


def _replace(symbols: tuple[str, ...], index: int, symbol: str) -> Layout:
  return Layout(symbols[:index] + (symbol,) + symbols[index + 1:])


def flip(layout: Layout, space, rng: random.Random) -> Mutation:
  """One random layer changes to another primitive of the space."""
  symbols = space_symbols(space)
  if len(symbols) < 2:
    raise MutationNotApplicable("flip needs a space of at least two primitives")
  index = rng.randrange(layout.depth)
  old = layout[index]
  new = rng.choice([s for s in symbols if s != old])
  return Mutation(_replace(layout.symbols, index, new), "flip", f"flip layer {index} {old}->{new}")


def swap(layout: Layout, space, rng: random.Random) -> Mutation:
  """Two layers holding different primitives trade places."""
  del space
  pairs = [(i, j) for i in range(layout.depth) for j in range(i + 1, layout.depth) if layout[i] != layout[j]]
  if not pairs:
    raise MutationNotApplicable("swap needs two layers with different primitives")
  i, j = rng.choice(pairs)
  symbols = list(layout.symbols)
  symbols[i], symbols[j] = symbols[j], symbols[i]
  return Mutation(Layout(tuple(symbols)), "swap", f"swap layers {i} ({layout[i]}) and {j} ({layout[j]})")


def _run_starts(runs) -> list[int]:
  starts, position = [], 0
  for _, length in runs:
    starts.append(position)
    position += length
  return starts


def move_run(layout: Layout, space, rng: random.Random) -> Mutation:
  """A maximal run moves to another gap between the remaining runs (the layout must change)."""
  del space
  runs = list(layout.runs())
  options = []
  for index in range(len(runs)):
    rest = runs[:index] + runs[index + 1:]
    for slot in range(len(rest) + 1):
      moved = Layout.from_runs(rest[:slot] + [runs[index]] + rest[slot:])
      if moved != layout:
        options.append((index, sum(n for _, n in rest[:slot]), moved))
  if not options:
    raise MutationNotApplicable("move_run needs at least two runs")
  index, new_start, moved = rng.choice(options)
  symbol, length = runs[index]
  return Mutation(moved, "move_run",
                  f"move run {length}{symbol} from layer {_run_starts(runs)[index]} to layer {new_start}")


def resize_run(layout: Layout, space, rng: random.Random) -> Mutation:
  """A run grows by one layer at a boundary and the neighbour run on that side shrinks by one."""
  del space
  runs = list(layout.runs())
  options = []  # (grown run, shrunk neighbour)
  for index in range(len(runs) - 1):
    if runs[index + 1][1] >= 2:
      options.append((index, index + 1))
    if runs[index][1] >= 2:
      options.append((index + 1, index))
  if not options:
    raise MutationNotApplicable("resize_run needs two neighbouring runs, one of them at least 2 long")
  grow, shrink = rng.choice(options)
  (g_symbol, g_length), (s_symbol, s_length) = runs[grow], runs[shrink]
  runs[grow] = (g_symbol, g_length + 1)
  runs[shrink] = (s_symbol, s_length - 1)
  return Mutation(Layout.from_runs(runs), "resize_run",
                  f"grow run {grow} {g_length}{g_symbol}->{g_length + 1}{g_symbol}, "
                  f"shrink run {shrink} {s_length}{s_symbol}->{s_length - 1}{s_symbol}")


def shift_ratio(layout: Layout, space, rng: random.Random) -> Mutation:
  """One layer of the most common primitive becomes the least common primitive of the space (ties: random)."""
  symbols = space_symbols(space)
  if len(symbols) < 2:
    raise MutationNotApplicable("shift_ratio needs a space of at least two primitives")
  counts = layout.counts()
  most_count = max(counts[s] for s in symbols)
  most = rng.choice([s for s in symbols if counts[s] == most_count])
  least_count = min(counts[s] for s in symbols if s != most)
  least = rng.choice([s for s in symbols if s != most and counts[s] == least_count])
  index = rng.choice([i for i, s in enumerate(layout.symbols) if s == most])
  mutated = _replace(layout.symbols, index, least)
  return Mutation(mutated, "shift_ratio",
                  f"shift ratio {layout.ratio_text()}->{mutated.ratio_text()}: layer {index} {most}->{least}")


MUTATIONS = {"flip": flip, "swap": swap, "move_run": move_run, "resize_run": resize_run,
             "shift_ratio": shift_ratio}


def applicable_kinds(layout: Layout, space) -> tuple[str, ...]:
  """The mutation kinds that can change `layout` inside `space`."""
  symbols = space_symbols(space)
  runs = layout.runs()
  kinds = []
  if len(symbols) >= 2:
    kinds += ["flip", "shift_ratio"]
  if len(runs) >= 2:
    kinds += ["swap", "move_run"]
    if any(n >= 2 for _, n in runs):
      kinds.append("resize_run")
  return tuple(k for k in MUTATION_KINDS if k in kinds)
