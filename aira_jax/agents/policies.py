"""Search policies (which node to work on next) and the registry that picks one by name.

Each policy is a frozen dataclass config whose `next_action(journal, rng)` is a pure function of the
journal, the config and a `random.Random`: it reads the journal and returns an `Action`; it keeps no state,
so a resumed run continues with the same behaviour. Defaults are aira-dojo's (Toledo et al. 2025, "AI Research Agents for Machine Learning").
One-shot and greedy live here; MCTS and evolutionary have their own modules and are re-exported.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from aira_jax.agents.action import Action, Policy, normalized_fitness
from aira_jax.agents.evolutionary import (EvolutionaryPolicy, accept, cap_island, island_assignment,
                                          island_populations, sample_parents, softmax_weights)
from aira_jax.agents.journal import Journal
from aira_jax.agents.mcts import MCTSPolicy, uct_score

__all__ = [
    "Action", "EvolutionaryPolicy", "GreedyPolicy", "MCTSPolicy", "OneShotPolicy", "POLICIES", "Policy",
    "accept", "cap_island", "island_assignment", "island_populations", "make_policy", "normalized_fitness",
    "sample_parents", "softmax_weights", "uct_score",
]


@dataclasses.dataclass(frozen=True)
class OneShotPolicy:
  """Always draft: independent attempts, no feedback between them."""

  def next_action(self, journal: Journal, rng: random.Random) -> Action:
    """Always `Action("draft")`."""
    del journal, rng
    return Action("draft")


@dataclasses.dataclass(frozen=True)
class GreedyPolicy:
  """aira-dojo greedy: draft `num_drafts` times, then debug or improve the best.

  After the drafts: with probability `debug_prob` debug a buggy leaf (chosen uniformly) whose
  `Journal.debug_depth` is <= `max_debug_depth`; if no leaf qualifies, fall through. Otherwise improve the
  single best good node; if no node is good yet, draft again.
  """

  num_drafts: int = 5
  debug_prob: float = 0.5
  max_debug_depth: int = 3

  def __post_init__(self):
    if self.num_drafts < 0:
      raise ValueError(f"num_drafts must be >= 0, got {self.num_drafts}")
    if not 0.0 <= self.debug_prob <= 1.0:
      raise ValueError(f"debug_prob must be in [0, 1], got {self.debug_prob}")
    if self.max_debug_depth < 0:
      raise ValueError(f"max_debug_depth must be >= 0, got {self.max_debug_depth}")

  def debug_candidates(self, journal: Journal) -> list:
    """Buggy leaves that may still be debugged (debug depth <= max_debug_depth), in append order."""
    return [n for n in journal.buggy_leaves() if journal.debug_depth(n.id) <= self.max_debug_depth]

  def next_action(self, journal: Journal, rng: random.Random) -> Action:
    """The next action (see the class docstring)."""
    if len(journal.drafts()) < self.num_drafts:
      return Action("draft")
    if rng.random() < self.debug_prob:
      candidates = self.debug_candidates(journal)
      if candidates:
        return Action("debug", (rng.choice(candidates).id,))
    best = journal.best(1)
    if not best:
      return Action("draft")
    return Action("improve", (best[0].id,))


POLICIES: dict[str, type] = {
    "one_shot": OneShotPolicy,
    "greedy": GreedyPolicy,
    "mcts": MCTSPolicy,
    "evolutionary": EvolutionaryPolicy,
}
"""Policy classes by the name configs and the command line use."""


def make_policy(name: str, **kwargs: Any) -> Policy:
  """Builds the policy registered as `name` with config overrides.

  Raises:
    ValueError: unknown name (listing the known ones) or unknown keyword (naming it and the allowed ones).
  """
  if name not in POLICIES:
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
  cls = POLICIES[name]
  allowed = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(kwargs) - allowed)
  if unknown:
    raise ValueError(f"policy {name!r} has no option(s) {', '.join(unknown)}; "
                     f"allowed: {', '.join(sorted(allowed)) or 'none'}")
  return cls(**kwargs)
