"""Composer's aggregation: many scored layouts in, one layout out.

Pooled search results are clustered by score with 1-D k-means (k = 5 in Composer), the best-scoring cluster
is kept, and its members vote layer by layer: N_0 is the plain per-layer majority, N_c conditions each layer
on the c layers already chosen below it. Composer found N_0 best.

Choices made here (each tested):
  - Duplicates: pooled results hold the same layout several times; `aggregate` keeps one entry per canonical
    text with its best score, so a layout counts once in both the clustering and the vote.
  - Ties follow the evidence. When symbols tie on votes at a layer (for N_c: among the layouts matching the
    context), the symbol whose voters scored better wins: first the best score among its voters, then their
    mean score, and only then the primitive alphabet ("A" < "M" < "S"), so the result stays deterministic.
    Breaking ties alphabetically instead once turned a two-member cluster (3A+13M, the best layout, and a
    worse 7A:9M layout) into a 9A:7M aggregate, more attention-heavy than anything the search rated well.
    `vote` without scores keeps the alphabet rule.
  - At least 3 voters (`MIN_VOTERS`). With two voters every disagreement is a 1:1 tie, so a fitness-broken
    vote just reproduces the better layout while claiming to be a consensus; 3 is the smallest number of
    voters that can outvote the best layout (and an N_0 vote of 3 over two symbols never ties). So a top
    cluster with fewer than 3 distinct layouts is merged with the next-best cluster (by centre), and the next,
    until it has at least 3; whole clusters are merged because k-means found no gap inside a cluster, so
    cutting one by score order would rest on differences the clustering treats as noise. The price: a large
    merged cluster can outvote the few top layouts; the fitness tie-break keeps them decisive only where the
    votes split evenly, and `Aggregation.member_rows` shows how far each member is from the result. With
    fewer than 3 distinct
    layouts overall there is nothing to vote with: the best layout is used as is. `Aggregation.rule` says
    which of these happened.
  - k shrinks to the number of distinct scores when there are fewer than k.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from aira_jax import primitives
from aira_jax.layout import Layout, as_layout

MIN_VOTERS = 3
"""Fewest distinct layouts a vote is taken over; smaller top clusters are merged with the next ones."""

_RESTARTS = 10
"""k-means runs from different seeded starts; the one with the smallest within-cluster error is kept."""

_MAX_LLOYD_STEPS = 1000
"""Safety cap; Lloyd's iterations stop much earlier, when no score changes cluster."""


def _checked_scores(scores: Sequence[float]) -> np.ndarray:
  values = np.asarray(scores, dtype=np.float64)
  if values.ndim != 1:
    raise ValueError(f"scores must be a flat sequence of numbers, got shape {values.shape}")
  if values.size == 0:
    raise ValueError("no scores to cluster; give at least one")
  bad = np.flatnonzero(~np.isfinite(values))
  if bad.size:
    raise ValueError(f"scores must be finite; score {bad[0]} is {values[bad[0]]}")
  return values


def _kmeans_plus_plus_centres(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
  """Picks k distinct scores as starting centres: the first uniformly, each next one with probability
  proportional to its squared distance from the nearest centre already picked."""
  centres = [values[rng.integers(values.size)]]
  while len(centres) < k:
    distance_sq = np.min((values[:, None] - np.asarray(centres)[None, :]) ** 2, axis=1)
    centres.append(values[rng.choice(values.size, p=distance_sq / distance_sq.sum())])
  return np.asarray(centres)


def _lloyd(values: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Alternates nearest-centre assignment and centre update until no assignment changes.

  Returns (labels, centres). A cluster left empty keeps its centre and is ignored by the caller.
  """
  centres = centres.copy()
  labels = None
  for _ in range(_MAX_LLOYD_STEPS):
    new_labels = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
    if labels is not None and np.array_equal(new_labels, labels):
      break
    labels = new_labels
    for cluster in range(centres.size):
      members = values[labels == cluster]
      if members.size:
        centres[cluster] = members.mean()
  return labels, centres


def _kmeans_labels(values: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Labels and centres of the best of `_RESTARTS` k-means++ / Lloyd runs (lowest within-cluster error)."""
  rng = np.random.default_rng(seed)
  best_error, best_labels, best_centres = math.inf, None, None
  for _ in range(_RESTARTS):
    labels, centres = _lloyd(values, _kmeans_plus_plus_centres(values, k, rng))
    error = float(np.sum((values - centres[labels]) ** 2))
    if error < best_error:
      best_error, best_labels, best_centres = error, labels, centres
  return best_labels, best_centres


def ranked_clusters(scores: Sequence[float], *, k: int = 5, lower_is_better: bool, seed: int = 0) -> list[list[int]]:
  """The non-empty clusters of a 1-D k-means of `scores`, best centre first, each as ascending indices.

  k-means++ starts drawn from `seed` (10 restarts, the lowest within-cluster squared error wins),
  then Lloyd's iterations until no score changes cluster. The best cluster is the one whose centre
  is lowest (`lower_is_better=True`, e.g. losses) or highest (accuracies). With fewer than k distinct scores,
  k shrinks to that number; equal scores always share a cluster. The result is deterministic for a seed.

  Raises:
    ValueError for no scores, non-finite scores, or k < 1.
  """
  values = _checked_scores(scores)
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k must be a positive integer, got {k!r}")
  labels, centres = _kmeans_labels(values, min(k, np.unique(values).size), seed)
  sign = 1.0 if lower_is_better else -1.0
  used = sorted(np.unique(labels).tolist(), key=lambda cluster: (sign * centres[cluster], cluster))
  return [np.flatnonzero(labels == cluster).tolist() for cluster in used]


def top_cluster(scores: Sequence[float], *, k: int = 5, lower_is_better: bool, seed: int = 0) -> list[int]:
  """Indices (ascending) of the scores in the best cluster of a 1-D k-means; see `ranked_clusters`.

  Raises:
    ValueError for no scores, non-finite scores, or k < 1.
  """
  return ranked_clusters(scores, k=k, lower_is_better=lower_is_better, seed=seed)[0]


def _check_equal_depth(layouts: Sequence[Layout]) -> None:
  depths = sorted({layout.depth for layout in layouts})
  if len(depths) > 1:
    raise ValueError(f"layouts must all have the same depth to be aggregated; got depths {depths}")


def _evidence(voter_scores: Sequence[float], lower_is_better: bool) -> tuple[float, float]:
  """(best, mean) of the voters' scores, oriented so that smaller is better in both."""
  sign = 1.0 if lower_is_better else -1.0
  oriented = [sign * score for score in voter_scores]
  return min(oriented), sum(oriented) / len(oriented)


def _most_common(symbols: Sequence[str], scores: Sequence[float] | None = None, *,
                 lower_is_better: bool = True) -> str:
  """The most frequent symbol. A tie goes to the symbol whose voters have the best score, then the best mean
  score (when `scores`, aligned with `symbols`, are given), then to the one first in the primitive alphabet."""
  counts = collections.Counter(symbols)
  order = primitives.alphabet()
  most = max(counts.values())
  tied = [symbol for symbol in counts if counts[symbol] == most]
  if scores is None:
    return min(tied, key=order.index)
  def evidence(symbol: str) -> tuple[float, float]:
    return _evidence([s for v, s in zip(symbols, scores) if v == symbol], lower_is_better)
  return min(tied, key=lambda symbol: (*evidence(symbol), order.index(symbol)))


def _next_symbol(layouts: Sequence[Layout], chosen: Sequence[str], context: int,
                 scores: Sequence[float] | None = None, lower_is_better: bool = True) -> str:
  """Votes layer len(chosen) among the layouts whose previous `context` layers equal the end of `chosen`,
  backing off to shorter contexts (down to 0, all layouts) when no layout matches. `scores` (aligned with
  `layouts`) break ties; see `_most_common`."""
  position = len(chosen)
  for length in range(min(context, position), -1, -1):
    window = tuple(chosen[position - length:])
    matching = [i for i, layout in enumerate(layouts) if layout.symbols[position - length:position] == window]
    if matching:
      voter_scores = None if scores is None else [scores[i] for i in matching]
      return _most_common([layouts[i][position] for i in matching], voter_scores,
                          lower_is_better=lower_is_better)
  raise AssertionError("context 0 matches every layout")  # unreachable: layouts is not empty


def _checked_vote_scores(scores: Sequence[float] | None, count: int, lower_is_better: bool | None) -> list | None:
  if scores is None:
    return None
  if lower_is_better is None:
    raise ValueError("scores were given without lower_is_better; say which direction is better")
  if len(scores) != count:
    raise ValueError(f"got {count} layouts but {len(scores)} scores; give one score per layout")
  return _checked_scores(scores).tolist()


def vote(layouts: Sequence[Layout | str], *, context: int = 0, scores: Sequence[float] | None = None,
         lower_is_better: bool | None = None) -> Layout:
  """Composer's N_c vote over equal-depth layouts.

  context=0 (N_0): layer i is the most common symbol at position i. context=c: layer i is the most common
  symbol at i among the layouts whose layers i-c..i-1 equal the ones already chosen (fewer near the bottom).
  If no layout matches, the context is shortened one layer at a time down to 0. (Each chosen symbol comes
  from a matching layout, so the full context always matches one; the back-off is a safeguard.)

  Ties: with `scores` (one per layout, `lower_is_better` required) a tie goes to the symbol whose voters at
  that layer have the best score, then the best mean score, then to the symbol first in the primitive
  alphabet. Without scores it goes straight to the alphabet ("A" < "M" < "S").

  Raises:
    ValueError for no layouts, a negative context, layouts of different depths (naming the depths), or scores
    that are not one finite number per layout or come without lower_is_better.
  """
  if isinstance(context, bool) or not isinstance(context, int) or context < 0:
    raise ValueError(f"context must be a non-negative integer, got {context!r}")
  parsed = [as_layout(layout) for layout in layouts]
  if not parsed:
    raise ValueError("no layouts to vote over; give at least one")
  _check_equal_depth(parsed)
  checked = _checked_vote_scores(scores, len(parsed), lower_is_better)
  chosen: list[str] = []
  for _ in range(parsed[0].depth):
    chosen.append(_next_symbol(parsed, chosen, context, checked, bool(lower_is_better)))
  return Layout(tuple(chosen))


def differing_layers(first: Layout | str, second: Layout | str) -> int:
  """How many layers differ between two equal-depth layouts (the Hamming distance).

  Raises:
    ValueError for layouts of different depths.
  """
  a, b = as_layout(first), as_layout(second)
  _check_equal_depth([a, b])
  return sum(x != y for x, y in zip(a, b))


def _only(count: int, singular_verb: str = "", plural_verb: str = "") -> str:
  """E.g. "only 1 distinct layout" or, with verbs, "are only 2 distinct layouts"."""
  verb = singular_verb if count == 1 else plural_verb
  text = f"only {count} distinct layout{'' if count == 1 else 's'}"
  return f"{verb} {text}" if verb else text


RULE_VOTE = "vote"
"""`Aggregation.rule` when the top cluster alone had enough distinct layouts to vote."""


@dataclasses.dataclass(frozen=True)
class Aggregation:
  """The result of `aggregate`.

  Attributes:
    layout: the aggregate layout (voted, or the best layout as is; see `rule`).
    members: the distinct layouts that voted (the top cluster, plus any merged clusters), best score first.
      With the "best layout as is" rule: every candidate, the one used first.
    member_scores: their scores, aligned with `members`.
    k: the number of clusters asked for (fewer are used when there are fewer distinct scores).
    context: c of the N_c vote.
    lower_is_better: the score direction used to pick the top cluster.
    num_candidates: distinct layouts that were clustered.
    rule: which rule made `layout`: "vote" (the top cluster voted), "vote (merged N clusters)" (the top
      cluster was too small and the N best clusters voted together), or "best layout as is (...)" (too few
      distinct layouts to vote; the reason in brackets).
    clusters_voted: how many k-means clusters the voters came from (0 with no vote).
    top_cluster_size: distinct layouts in the top k-means cluster before any merge (None: same as members).
  """

  layout: Layout
  members: tuple[Layout, ...]
  member_scores: tuple[float, ...]
  k: int
  context: int
  lower_is_better: bool
  num_candidates: int
  rule: str = RULE_VOTE
  clusters_voted: int = 1
  top_cluster_size: int | None = None

  @property
  def voted(self) -> bool:
    """Whether `layout` came from a vote (False: the best layout was used as is)."""
    return self.rule.startswith(RULE_VOTE)

  def member_differences(self) -> tuple[int, ...]:
    """For each member, how many layers differ from the aggregate (0: the member is the aggregate)."""
    return tuple(differing_layers(member, self.layout) for member in self.members)

  def member_rows(self) -> list[dict]:
    """Rows for a report table: the aggregate first, then each member, best first.

    Each row: {"row": "aggregate" or "member i", "layout": run-length text, "ratio": e.g. "3A:13M",
    "score": the score, or "not evaluated" for an aggregate that is no member, "differs at": layers that
    differ from the aggregate}.
    """
    known = dict(zip(self.members, self.member_scores))
    rows = [self._row("aggregate", self.layout, known.get(self.layout, "not evaluated"), 0)]
    for number, (member, score, differs) in enumerate(
        zip(self.members, self.member_scores, self.member_differences()), start=1):
      rows.append(self._row(f"member {number}", member, score, differs))
    return rows

  @staticmethod
  def _row(name: str, layout: Layout, score: float | str, differs: int) -> dict:
    return {"row": name, "layout": layout.run_length(), "ratio": layout.ratio_text(), "score": score,
            "differs at": differs}

  def _how(self) -> str:
    if not self.voted:
      return (f"Best layout as is, no vote, because there {_only(self.num_candidates, 'is', 'are')} and a vote "
              f"needs at least {MIN_VOTERS}")
    if self.clusters_voted > 1:
      top_size = len(self.members) if self.top_cluster_size is None else self.top_cluster_size
      return (f"N_{self.context} vote of the top {self.clusters_voted} clusters merged, because the top cluster "
              f"had {_only(top_size)} and a vote needs at least {MIN_VOTERS}")
    return f"N_{self.context} vote of the top cluster"

  def describe(self) -> str:
    """One line for reports that says which rule made the layout, e.g.
    "N_0 vote of the top cluster (3 of 40 distinct layouts, k=5, lower is better, scores ..): 2A+5M+... (..)"."""
    direction = "lower" if self.lower_is_better else "higher"
    clustering = f", k={self.k}" if self.voted else ""
    return (f"{self._how()} ({len(self.members)} of {self.num_candidates} distinct layouts{clustering}, "
            f"{direction} is better, scores {min(self.member_scores):.4g}..{max(self.member_scores):.4g}): "
            f"{self.layout.run_length()} ({self.layout.ratio_text()})")


def _best_score_per_layout(layouts: Sequence[Layout], scores: Sequence[float],
                           lower_is_better: bool) -> dict[Layout, float]:
  """One entry per distinct layout, in first-seen order, with its best score."""
  best: dict[Layout, float] = {}
  for layout, score in zip(layouts, scores):
    if layout not in best or (score < best[layout] if lower_is_better else score > best[layout]):
      best[layout] = score
  return best


def _voter_clusters(scores: Sequence[float], *, k: int, lower_is_better: bool, seed: int) -> list[list[int]]:
  """The best clusters, merged best first until they hold at least `MIN_VOTERS` candidates."""
  clusters = ranked_clusters(scores, k=k, lower_is_better=lower_is_better, seed=seed)
  taken = [clusters[0]]
  while sum(map(len, taken)) < MIN_VOTERS and len(taken) < len(clusters):
    taken.append(clusters[len(taken)])
  return taken


def _best_first(indices: Sequence[int], scores: Sequence[float], lower_is_better: bool) -> list[int]:
  sign = 1.0 if lower_is_better else -1.0
  return sorted(indices, key=lambda i: (sign * scores[i], i))


def aggregate(layouts: Sequence[Layout | str], scores: Sequence[float], *, k: int = 5, context: int = 0,
              lower_is_better: bool, seed: int = 0) -> Aggregation:
  """Composer's aggregation: de-duplicate, keep the top k-means cluster by score, N_c vote over it.

  Layouts with the same canonical text are merged first, keeping the best score, so a layout that several
  agents submitted counts once. All layouts must have the same depth. A top cluster with fewer than
  `MIN_VOTERS` distinct layouts is merged with the next-best clusters; with fewer than `MIN_VOTERS` distinct
  layouts overall the best one is returned as is (see the module docstring). Vote ties follow the voters'
  scores.

  Raises:
    ValueError for no layouts, len(layouts) != len(scores), non-finite scores, or unequal depths.
  """
  parsed = [as_layout(layout) for layout in layouts]
  if len(parsed) != len(scores):
    raise ValueError(f"got {len(parsed)} layouts but {len(scores)} scores; give one score per layout")
  if not parsed:
    raise ValueError("no layouts to aggregate; give at least one")
  values = _checked_scores(scores)
  _check_equal_depth(parsed)
  best_score = _best_score_per_layout(parsed, values.tolist(), lower_is_better)
  candidates, candidate_scores = list(best_score), list(best_score.values())
  settings = dict(k=k, context=context, lower_is_better=lower_is_better, num_candidates=len(candidates))
  if len(candidates) < MIN_VOTERS:
    order = _best_first(range(len(candidates)), candidate_scores, lower_is_better)
    return Aggregation(
        layout=candidates[order[0]], members=tuple(candidates[i] for i in order),
        member_scores=tuple(candidate_scores[i] for i in order),
        rule=f"best layout as is ({_only(len(candidates))}; a vote needs at least {MIN_VOTERS})",
        clusters_voted=0, top_cluster_size=None, **settings)
  clusters = _voter_clusters(candidate_scores, k=k, lower_is_better=lower_is_better, seed=seed)
  order = _best_first([i for cluster in clusters for i in cluster], candidate_scores, lower_is_better)
  members, member_scores = tuple(candidates[i] for i in order), tuple(candidate_scores[i] for i in order)
  return Aggregation(
      layout=vote(members, context=context, scores=member_scores, lower_is_better=lower_is_better),
      members=members, member_scores=member_scores,
      rule=RULE_VOTE if len(clusters) == 1 else f"{RULE_VOTE} (merged {len(clusters)} clusters)",
      clusters_voted=len(clusters), top_cluster_size=len(clusters[0]), **settings)
