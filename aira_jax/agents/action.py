"""`Action` (what a policy asks for next), the analysis schedule, and the fitness normalisation the policies share.

A policy never runs an operator itself: it returns which operator to apply to which parents, so the same
policy drives LLM operators (design, compose) and the built-in heuristic agent alike. Policies choose among
draft, improve, debug and crossover; "analyze" (an agent reviews its results in writing, nothing is evaluated)
comes from `analysis_due`, a schedule the ensemble applies to every agent before asking its policy, so every
policy gets it the same way and no policy sees analyses (they read `Journal.candidates_only`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from typing import Protocol

from aira_jax.agents.journal import PARENT_COUNTS, Journal, Node

_ACTION_OPERATORS = ("draft", "improve", "debug", "crossover", "analyze")


@dataclasses.dataclass(frozen=True)
class Action:
  """Apply `operator` to the nodes `parent_ids` (empty for a draft, two for a crossover; for an analysis, the
  agent's latest step)."""

  operator: str
  parent_ids: tuple[str, ...] = ()

  def __post_init__(self):
    if self.operator not in _ACTION_OPERATORS:
      raise ValueError(f"unknown action {self.operator!r}; allowed: {', '.join(_ACTION_OPERATORS)}")
    object.__setattr__(self, "parent_ids", tuple(self.parent_ids))
    if len(self.parent_ids) != PARENT_COUNTS[self.operator]:
      raise ValueError(f"{self.operator} takes {PARENT_COUNTS[self.operator]} parent(s), got {self.parent_ids}")


class Policy(Protocol):
  """A search policy: a frozen config whose `next_action` is a pure function of (journal, config, rng)."""

  def next_action(self, journal: Journal, rng: random.Random) -> Action:
    """The next step to take; reads the journal, never changes it; randomness only from `rng`."""
    ...


def analysis_due(agent_nodes: Sequence[Node], every: int) -> Action | None:
  """`Action("analyze", (latest step,))` when the agent's steps since its last analysis number `every` or more;
  None otherwise, or when `every` is 0 (never).

  `agent_nodes`: one agent's nodes in append order. A step is any node that is not an analysis (scored, failed or
  a duplicate). A failed analysis counts as an analysis, so a broken one is retried `every` steps later, not at
  once. A pure function of the journal, so a resumed run keeps the schedule.
  """
  if every < 0:
    raise ValueError(f"every must be >= 0 (0 = never), got {every}")
  if every == 0:
    return None
  since = 0
  for node in reversed(agent_nodes):
    if node.is_analysis:
      break
    since += 1
  if since < every:
    return None
  latest = next(n for n in reversed(agent_nodes) if not n.is_analysis)
  return Action("analyze", (latest.id,))


def normalized_fitness(nodes: Iterable[Node], lower_is_better: bool) -> dict[str, float]:
  """Min-max normalised metric of each scored node: 1.0 = best seen, 0.0 = worst seen.

  With `lower_is_better` the scale is flipped so that higher is always better. When every scored metric is
  equal (or only one exists) each gets 1.0. Unscored nodes (metric None) are left out; callers treat them
  as 0.0, the worst value.
  """
  scored = [(n.id, n.metric) for n in nodes if n.metric is not None and not n.is_buggy]
  if not scored:
    return {}
  low = min(m for _, m in scored)
  high = max(m for _, m in scored)
  if high == low:
    return {node_id: 1.0 for node_id, _ in scored}
  span = high - low
  if lower_is_better:
    return {node_id: (high - m) / span for node_id, m in scored}
  return {node_id: (m - low) / span for node_id, m in scored}
