"""Composer's aggregation: many scored layouts in, one layout out.

Pooled search results are clustered by score with 1-D k-means (k = 5 in Composer), the best-scoring cluster
is kept, and its members vote layer by layer: N_0 is the plain per-layer majority, N_c conditions each layer
on the c layers already chosen below it. Composer found N_0 best.

Choices made here (each tested):
  - Duplicates: pooled results hold the same layout several times; `aggregate` keeps one entry per canonical
    text with its best score, so a layout counts once in both the clustering and the vote.
  - Ties in a vote go to the symbol that comes first in the primitive alphabet ("A" < "M" < "S").
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


def top_cluster(scores: Sequence[float], *, k: int = 5, lower_is_better: bool, seed: int = 0) -> list[int]:
  """Indices (ascending) of the scores in the best cluster of a 1-D k-means.

  k-means++ starts drawn from `seed` (10 restarts, the lowest within-cluster squared error wins),
  then Lloyd's iterations until no score changes cluster. The best cluster is the non-empty one whose centre
  is lowest (`lower_is_better=True`, e.g. losses) or highest (accuracies). With fewer than k distinct scores,
  k shrinks to that number; equal scores always share a cluster. The result is deterministic for a seed.

  Raises:
    ValueError for no scores, non-finite scores, or k < 1.
  """
  values = _checked_scores(scores)
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k must be a positive integer, got {k!r}")
  k = min(k, np.unique(values).size)
  rng = np.random.default_rng(seed)
  best_error, best_labels, best_centres = math.inf, None, None
  for _ in range(_RESTARTS):
    labels, centres = _lloyd(values, _kmeans_plus_plus_centres(values, k, rng))
    error = float(np.sum((values - centres[labels]) ** 2))
    if error < best_error:
      best_error, best_labels, best_centres = error, labels, centres
  used = np.unique(best_labels)
  pick = np.argmin if lower_is_better else np.argmax
  best = used[pick(best_centres[used])]
  return np.flatnonzero(best_labels == best).tolist()


def _check_equal_depth(layouts: Sequence[Layout]) -> None:
  depths = sorted({layout.depth for layout in layouts})
  if len(depths) > 1:
    raise ValueError(f"layouts must all have the same depth to be aggregated; got depths {depths}")


def _most_common(symbols: Sequence[str]) -> str:
  """The most frequent symbol; a tie goes to the one first in the primitive alphabet."""
  counts = collections.Counter(symbols)
  order = primitives.alphabet()
  return min(counts, key=lambda symbol: (-counts[symbol], order.index(symbol)))


def _next_symbol(layouts: Sequence[Layout], chosen: Sequence[str], context: int) -> str:
  """Votes layer len(chosen) among the layouts whose previous `context` layers equal the end of `chosen`,
  backing off to shorter contexts (down to 0, all layouts) when no layout matches."""
  position = len(chosen)
  for length in range(min(context, position), -1, -1):
    window = tuple(chosen[position - length:])
    matching = [layout[position] for layout in layouts if layout.symbols[position - length:position] == window]
    if matching:
      return _most_common(matching)
  raise AssertionError("context 0 matches every layout")  # unreachable: layouts is not empty


def vote(layouts: Sequence[Layout | str], *, context: int = 0) -> Layout:
  """Composer's N_c vote over equal-depth layouts.

  context=0 (N_0): layer i is the most common symbol at position i. context=c: layer i is the most common
  symbol at i among the layouts whose layers i-c..i-1 equal the ones already chosen (fewer near the bottom).
  If no layout matches, the context is shortened one layer at a time down to 0. (Each chosen symbol comes
  from a matching layout, so the full context always matches one; the back-off is a safeguard.)
  Ties go to the symbol first in the primitive alphabet ("A" < "M" < "S").

  Raises:
    ValueError for no layouts, a negative context, or layouts of different depths (naming the depths).
  """
  if isinstance(context, bool) or not isinstance(context, int) or context < 0:
    raise ValueError(f"context must be a non-negative integer, got {context!r}")
  parsed = [as_layout(layout) for layout in layouts]
  if not parsed:
    raise ValueError("no layouts to vote over; give at least one")
  _check_equal_depth(parsed)
  chosen: list[str] = []
  for _ in range(parsed[0].depth):
    chosen.append(_next_symbol(parsed, chosen, context))
  return Layout(tuple(chosen))


@dataclasses.dataclass(frozen=True)
class Aggregation:
  """The result of `aggregate`.

  Attributes:
    layout: the voted layout.
    members: the distinct layouts of the top cluster, best score first.
    member_scores: their scores, aligned with `members`.
    k: the number of clusters asked for (fewer are used when there are fewer distinct scores).
    context: c of the N_c vote.
    lower_is_better: the score direction used to pick the top cluster.
    num_candidates: distinct layouts that were clustered.
  """

  layout: Layout
  members: tuple[Layout, ...]
  member_scores: tuple[float, ...]
  k: int
  context: int
  lower_is_better: bool
  num_candidates: int

  def describe(self) -> str:
    """One line for reports, e.g. "N_0 vote of the top cluster (3 of 40 distinct layouts, k=5): ..."."""
    direction = "lower" if self.lower_is_better else "higher"
    return (f"N_{self.context} vote of the top cluster ({len(self.members)} of {self.num_candidates} distinct "
            f"layouts, k={self.k}, {direction} is better, scores {min(self.member_scores):.4g}.."
            f"{max(self.member_scores):.4g}): {self.layout.run_length()} ({self.layout.ratio_text()})")


def aggregate(layouts: Sequence[Layout | str], scores: Sequence[float], *, k: int = 5, context: int = 0,
              lower_is_better: bool, seed: int = 0) -> Aggregation:
  """Composer's aggregation: de-duplicate, keep the top k-means cluster by score, N_c vote over it.

  Layouts with the same canonical text are merged first, keeping the best score, so a layout that several
  agents submitted counts once. All layouts must have the same depth.

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
  best_score: dict[Layout, float] = {}
  for layout, score in zip(parsed, values.tolist()):
    if layout not in best_score or (score < best_score[layout] if lower_is_better else score > best_score[layout]):
      best_score[layout] = score
  candidates = list(best_score)
  candidate_scores = [best_score[layout] for layout in candidates]
  indices = top_cluster(candidate_scores, k=k, lower_is_better=lower_is_better, seed=seed)
  sign = 1.0 if lower_is_better else -1.0
  indices.sort(key=lambda i: (sign * candidate_scores[i], i))
  members = tuple(candidates[i] for i in indices)
  return Aggregation(
      layout=vote(members, context=context),
      members=members,
      member_scores=tuple(candidate_scores[i] for i in indices),
      k=k,
      context=context,
      lower_is_better=lower_is_better,
      num_candidates=len(candidates),
  )
