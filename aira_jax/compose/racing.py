"""Racing the search's top layouts: re-evaluate contenders with more seeds until the evidence separates them.

One seed per layout is not enough to rank layouts at the proxy's size: the seed-to-seed sd of a score is of
the order of the spread between good layouts. After the search, the `top` best layouts by their single score
are raced:

  round r     every contender still in the race is evaluated with seed r (the search's own seed is round 0,
              already known). The evaluator's seed fixes the initialisation streams and the batch order, and
              in switch mode every layout draws its parameters from the same streams, so at a given seed all
              layouts see the same random numbers (common random numbers): a paired difference cancels the
              noise the layouts share.
  elimination from `min_repeats` rounds on, the leader is the contender with the best mean; each other
              contender's paired differences from the leader (over their common seeds) get a Student-t
              interval; a contender whose interval lies entirely on the worse side is out. The race looks
              at the data after every round, and an uncorrected 90% test repeated over rounds and
              contenders drops a truly tied layout far more often than 10% of the time (a test of this
              module saw it), so each interval is Bonferroni-corrected over every comparison the race can
              make: the chance that any contender tied with the best is dropped is at most 1 - confidence.
  stop        when one contender is left, or after `len(seeds)` rounds (the repeat budget). Contenders still
              in the race are statistically tied with the leader.

Why racing (successive elimination, as in F-race / Hoeffding races) and not successive halving: halving drops
a fixed fraction each round whether or not the data separate them, so with noisy scores it discards layouts
that are tied; racing drops a contender only on evidence and spends the repeat budget on the ones still in
doubt. The correction makes "worse" a strong statement; "tied" means "not shown worse at this budget".
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence

from scipy import stats


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
  """Student-t interval for the mean of `values`; (nan, nan) with fewer than 2 values."""
  if len(values) < 2:
    return (math.nan, math.nan)
  mean = statistics.fmean(values)
  half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
  return (mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class Standing:
  """One contender after the race: its score per seed, mean and t interval, and how it finished.

  `status`: "best" (the leader), "tied" (still in the race at the end), "worse" (eliminated after
  `rounds` rounds: its paired interval against the leader excluded a tie) or "failed" (an evaluation failed).
  `difference` is the mean paired difference from the final leader (contender - leader) with its interval at
  `confidence` (per comparison, uncorrected: a description, not the elimination test).
  """

  layout: str
  scores: dict[int, float]
  status: str
  rounds: int
  difference: float = math.nan
  difference_interval: tuple[float, float] = (math.nan, math.nan)
  confidence: float = 0.9

  @property
  def repeats(self) -> int:
    return len(self.scores)

  @property
  def mean(self) -> float:
    return statistics.fmean(self.scores.values()) if self.scores else math.nan

  @property
  def interval(self) -> tuple[float, float]:
    return t_interval(list(self.scores.values()), self.confidence)

  def to_dict(self) -> dict:
    return {"layout": self.layout, "scores": {str(k): v for k, v in self.scores.items()}, "status": self.status,
            "rounds": self.rounds, "mean": self.mean, "interval": list(self.interval),
            "difference": self.difference, "difference_interval": list(self.difference_interval),
            "confidence": self.confidence}

  @classmethod
  def from_dict(cls, row: Mapping) -> Standing:
    """The inverse of `to_dict`, also after a JSON round trip (which turns NaN into None)."""
    number = lambda value: math.nan if value is None else float(value)
    return cls(layout=row["layout"], scores={int(k): float(v) for k, v in row["scores"].items()},
               status=row["status"], rounds=int(row["rounds"]), difference=number(row["difference"]),
               difference_interval=tuple(map(number, row["difference_interval"])),
               confidence=float(row["confidence"]))


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> list[float]:
  return [a[seed] - b[seed] for seed in sorted(a.keys() & b.keys())]


def _evaluate_round(evaluate: Callable[[str, int], float | None], layouts: list[str], seed: int,
                    workers: int) -> list[float | None]:
  """`evaluate(layout, seed)` for each layout, in order, `workers` at a time."""
  if workers <= 1 or len(layouts) <= 1:
    return [evaluate(layout, seed) for layout in layouts]
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="race") as pool:
    futures = [pool.submit(evaluate, layout, seed) for layout in layouts]
    try:
      return [future.result() for future in futures]
    finally:
      for future in futures:
        future.cancel()


def race(evaluate: Callable[[str, int], float | None], contenders: Sequence[str], seeds: Sequence[int], *,
         lower_is_better: bool, min_repeats: int = 3, confidence: float = 0.9,
         on_round: Callable[[int, list[str]], None] | None = None, workers: int = 1) -> list[Standing]:
  """Races `contenders` over `seeds` (module docstring); returns their standings, best first.

  `evaluate(layout, seed)` returns the score, or None when that evaluation failed (the contender is then out
  as "failed"); a round's evaluations run `workers` at a time (threads), and its results are taken in
  contender order, so the outcome does not depend on `workers`. Ties in the mean go to the earlier contender.
  """
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
  if min_repeats < 2:
    raise ValueError(f"min_repeats must be >= 2 (a t interval needs two seeds), got {min_repeats}")
  sign = 1.0 if lower_is_better else -1.0
  scores: dict[str, dict[int, float]] = {layout: {} for layout in contenders}
  alive, out = list(dict.fromkeys(contenders)), {}

  looks = max(1, len(seeds) - min_repeats + 1) * max(1, len(alive) - 1)
  per_comparison = 1.0 - (1.0 - confidence) / looks

  def leader() -> str:
    return min(alive, key=lambda layout: sign * statistics.fmean(scores[layout].values()))

  for number, seed in enumerate(seeds, start=1):
    round_scores = _evaluate_round(evaluate, list(alive), seed, workers)
    for layout, score in zip(list(alive), round_scores):
      if score is None or not math.isfinite(score):
        alive.remove(layout)
        out[layout] = ("failed", number)
      else:
        scores[layout][seed] = float(score)
    if number >= min_repeats and len(alive) > 1:
      best = leader()
      for layout in [c for c in alive if c != best]:
        low, high = t_interval(_paired(scores[layout], scores[best]), per_comparison)
        if (low > 0) if lower_is_better else (high < 0):  # the whole interval on the worse side
          alive.remove(layout)
          out[layout] = ("worse", number)
    if on_round is not None:
      on_round(number, list(alive))
    if len(alive) <= 1:
      break
  best = leader() if alive else None
  standings = []
  for layout in scores:
    status, rounds = out.get(layout, ("best" if layout == best else "tied", len(scores[layout])))
    difference, interval = math.nan, (math.nan, math.nan)
    if best is not None and layout != best and scores[layout]:
      paired = _paired(scores[layout], scores[best])
      difference = statistics.fmean(paired) if paired else math.nan
      interval = t_interval(paired, confidence)
    standings.append(Standing(layout, scores[layout], status, rounds, difference, interval, confidence))
  order = {"best": 0, "tied": 1, "worse": 2, "failed": 3}
  standings.sort(key=lambda s: (order[s.status], sign * s.mean if s.scores else math.inf))
  return standings
