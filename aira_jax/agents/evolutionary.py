"""Island-model evolutionary search (aira-dojo's evolutionary scaffold), as a pure policy over the journal.

Island membership is not stored: it is derived from the journal, so no node field is needed and a resumed
run sees the same islands.
  - The k-th draft (in append order, k = 0, 1, ...) belongs to island k mod num_islands (round-robin by
    node order).
  - Every other node belongs to the island of its first parent (a crossover takes both parents from one
    island, so this is that island).
An island's *population* is replayed in append order: a good draft joins unconditionally (it seeds the
island); any other node joins only if `accept` says it beats the current population average; after each
join the island is capped by `cap_island` (the worst member is dropped). Buggy nodes never join.
A *generation* is `individuals_per_generation` nodes of an island (every node counts, buggy and rejected
ones too; the seeding drafts are generation 0).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

from aira_jax.agents.action import Action, normalized_fitness
from aira_jax.agents.journal import Journal, Node


def _better(a: float, b: float, lower_is_better: bool) -> bool:
  return a < b if lower_is_better else a > b


def _goodness(node: Node) -> tuple[bool, float]:
  """Sort key, larger is better: scored before unscored, then by metric in the node's direction."""
  if node.metric is None or node.is_buggy:
    return (False, 0.0)
  return (True, -node.metric if node.lower_is_better else node.metric)


def accept(island_nodes: Sequence[Node], child: Node) -> bool:
  """Keeps `child` only if it is good and strictly beats the mean metric of the scored `island_nodes`.

  An island with no scored member accepts any good child. The direction is the child's `lower_is_better`.
  """
  if not child.is_good:
    return False
  scored = [n.metric for n in island_nodes if n.is_good]
  if not scored:
    return True
  return _better(child.metric, sum(scored) / len(scored), child.lower_is_better)


def cap_island(island_nodes: Sequence[Node], max_size: int) -> list[Node]:
  """Drops the worst members until at most `max_size` remain; survivors keep their order.

  Ties in metric drop the most recently added first (the older member stays).
  """
  members = list(island_nodes)
  while len(members) > max_size:
    worst = min(range(len(members)), key=lambda i: (_goodness(members[i]), -i))
    del members[worst]
  return members


def island_assignment(journal: Journal, num_islands: int) -> dict[str, int]:
  """Island index of every node (see the module docstring for the rule)."""
  islands: dict[str, int] = {}
  drafts_seen = 0
  for node in journal.nodes:
    if node.operator == "draft":
      islands[node.id] = drafts_seen % num_islands
      drafts_seen += 1
    else:
      islands[node.id] = islands[node.parent_ids[0]]
  return islands


def island_populations(journal: Journal, num_islands: int, max_island_size: int) -> list[list[Node]]:
  """Replays accept / cap over the journal: the surviving members of each island, in join order."""
  islands = island_assignment(journal, num_islands)
  populations: list[list[Node]] = [[] for _ in range(num_islands)]
  for node in journal.nodes:
    population = populations[islands[node.id]]
    joins = node.is_good if node.operator == "draft" else accept(population, node)
    if joins:
      population.append(node)
      populations[islands[node.id]] = cap_island(population, max_island_size)
  return populations


def softmax_weights(nodes: Sequence[Node], temperature: float, lower_is_better: bool) -> list[float]:
  """Selection probabilities: softmax of min-max normalised fitness (in [0, 1]) divided by temperature."""
  fitness = normalized_fitness(nodes, lower_is_better)
  logits = [fitness.get(n.id, 0.0) / temperature for n in nodes]
  top = max(logits)
  exps = [math.exp(v - top) for v in logits]
  total = sum(exps)
  return [e / total for e in exps]


def sample_parents(nodes: Sequence[Node], count: int, rng: random.Random, temperature: float,
                   lower_is_better: bool) -> list[Node]:
  """Draws `count` distinct parents by softmax selection, without replacement (weights renormalised)."""
  if count > len(nodes):
    raise ValueError(f"cannot draw {count} distinct parents from {len(nodes)} nodes")
  pool = list(nodes)
  chosen: list[Node] = []
  for _ in range(count):
    weights = softmax_weights(pool, temperature, lower_is_better)
    pick = rng.choices(range(len(pool)), weights=weights)[0]
    chosen.append(pool.pop(pick))
  return chosen


@dataclasses.dataclass(frozen=True)
class EvolutionaryPolicy:
  """Islands of candidates evolved by improve and crossover.

  Each call:
    1. While fewer than num_islands * individuals_per_generation drafts exist: draft (generation 0 of
       every island, dealt round-robin).
    2. Target the island with the fewest nodes among those with a non-empty population (ties: lowest
       index); if every population is empty, draft.
    3. If the island has completed `crossover_after_generations` generations and has two members: with
       probability `crossover_prob` crossover two softmax-sampled parents; otherwise improve one.
  Buggy children are not debugged here (they simply fail `accept`).
  """

  num_islands: int = 2
  individuals_per_generation: int = 5
  crossover_prob: float = 0.5
  crossover_after_generations: int = 2
  max_island_size: int = 20
  temperature: float = 1.0

  def __post_init__(self):
    for name in ("num_islands", "individuals_per_generation", "max_island_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if not 0.0 <= self.crossover_prob <= 1.0:
      raise ValueError(f"crossover_prob must be in [0, 1], got {self.crossover_prob}")
    if self.crossover_after_generations < 0:
      raise ValueError(f"crossover_after_generations must be >= 0, got {self.crossover_after_generations}")
    if self.temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}")

  def generations_completed(self, journal: Journal, island: int) -> int:
    """Whole generations (individuals_per_generation nodes each) the island has seen."""
    islands = island_assignment(journal, self.num_islands)
    size = sum(1 for i in islands.values() if i == island)
    return size // self.individuals_per_generation

  def next_action(self, journal: Journal, rng: random.Random) -> Action:
    """The next action (see the class docstring)."""
    if len(journal.drafts()) < self.num_islands * self.individuals_per_generation:
      return Action("draft")
    populations = island_populations(journal, self.num_islands, self.max_island_size)
    islands = island_assignment(journal, self.num_islands)
    sizes = [0] * self.num_islands
    for island in islands.values():
      sizes[island] += 1
    live = [i for i in range(self.num_islands) if populations[i]]
    if not live:
      return Action("draft")
    target = min(live, key=lambda i: (sizes[i], i))
    population = populations[target]
    lower = journal.lower_is_better
    may_cross = (sizes[target] // self.individuals_per_generation >= self.crossover_after_generations
                 and len(population) >= 2)
    if may_cross and rng.random() < self.crossover_prob:
      parents = sample_parents(population, 2, rng, self.temperature, lower)
      return Action("crossover", tuple(p.id for p in parents))
    parent = sample_parents(population, 1, rng, self.temperature, lower)[0]
    return Action("improve", (parent.id,))
