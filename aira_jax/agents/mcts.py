"""Monte-Carlo tree search over the journal (aira-dojo's MCTS scaffold), as a pure policy.

The tree is read from the journal each call instead of kept as mutable state, so a resumed run makes the
same choices: a virtual root's children are the drafts; every other node hangs under its *first* parent
(a crossover child sits under its primary parent only). Visits and values are derived, which is exactly what
back-propagation would have accumulated:
  N(node) = number of nodes in its subtree, itself included (N(root) = all tree nodes);
  Q(node) = mean normalised fitness over that subtree, buggy or unscored nodes counting 0 (the worst).
Fitness is min-max normalised over every scored node in the journal, flipped for lower-is-better metrics.
"""

from __future__ import annotations

import dataclasses
import math
import random

from aira_jax.agents.action import Action, normalized_fitness
from aira_jax.agents.journal import Journal, Node


def uct_score(q: float, n_parent: int, n_child: int, c: float) -> float:
  """UCT = q + c * sqrt(ln(n_parent) / n_child).

  Args:
    q: the child's mean normalised value, in [0, 1].
    n_parent: visits of the parent (>= 1); ln(1) = 0 means no exploration bonus.
    n_child: visits of the child; 0 gives +inf (an unvisited child is tried first).
    c: exploration constant (0.25 in aira-dojo).
  """
  if n_child <= 0:
    return math.inf
  if n_parent < 1:
    raise ValueError(f"n_parent must be >= 1, got {n_parent}")
  return q + c * math.sqrt(math.log(n_parent) / n_child)


@dataclasses.dataclass(frozen=True)
class _Tree:
  """Tree children (by first parent) and derived subtree statistics."""

  children: dict[str | None, list[Node]]  # None = the virtual root
  visits: dict[str, int]
  value_sum: dict[str, float]

  def q(self, node_id: str) -> float:
    return self.value_sum[node_id] / self.visits[node_id]


def _build_tree(journal: Journal) -> _Tree:
  nodes = journal.nodes
  children: dict[str | None, list[Node]] = {None: []}
  for node in nodes:
    children.setdefault(node.id, [])
    children.setdefault(node.parent_ids[0] if node.parent_ids else None, []).append(node)
  fitness = normalized_fitness(nodes, journal.lower_is_better)
  visits = {n.id: 1 for n in nodes}
  value_sum = {n.id: fitness.get(n.id, 0.0) for n in nodes}
  for node in reversed(nodes):  # parents are appended before children, so this visits children first
    if node.parent_ids:
      parent = node.parent_ids[0]
      visits[parent] += visits[node.id]
      value_sum[parent] += value_sum[node.id]
  return _Tree(children=children, visits=visits, value_sum=value_sum)


@dataclasses.dataclass(frozen=True)
class MCTSPolicy:
  """Descend from the root by UCT until a node can be expanded.

  Rules at the current node, starting at the virtual root:
    - the root with fewer than `num_children` drafts: draft;
    - a buggy node with no child yet: debug it (a buggy node is expanded by one debug child; after that
      the search descends into that child, so repeated failures form a debug chain);
    - any other node with fewer than `num_children` children: improve it;
    - otherwise move to the child with the highest `uct_score` (ties: the earliest appended).
  """

  uct_c: float = 0.25
  num_children: int = 5

  def __post_init__(self):
    if self.uct_c < 0:
      raise ValueError(f"uct_c must be >= 0, got {self.uct_c}")
    if self.num_children < 1:
      raise ValueError(f"num_children must be >= 1, got {self.num_children}")

  def next_action(self, journal: Journal, rng: random.Random) -> Action:
    """The next action; deterministic given the journal (`rng` is accepted for the common signature)."""
    del rng
    tree = _build_tree(journal)
    path = self.select_path(journal, tree)
    if not path:
      return Action("draft")
    leaf = path[-1]
    if leaf.is_buggy:
      return Action("debug", (leaf.id,))
    return Action("improve", (leaf.id,))

  def select_path(self, journal: Journal, tree: _Tree | None = None) -> list[Node]:
    """The nodes visited from the root down to the one to expand; [] means expand the root (draft)."""
    tree = tree or _build_tree(journal)
    path: list[Node] = []
    current: Node | None = None
    n_current = len(journal)
    while True:
      kids = tree.children[current.id if current else None]
      if current is None and len(kids) < self.num_children:
        return path
      if current is not None and current.is_buggy and not kids:
        return path
      if current is not None and not current.is_buggy and len(kids) < self.num_children:
        return path
      best = max(kids, key=lambda k: uct_score(tree.q(k.id), n_current, tree.visits[k.id], self.uct_c))
      path.append(best)
      current = best
      n_current = tree.visits[best.id]
