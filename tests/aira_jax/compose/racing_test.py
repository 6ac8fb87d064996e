"""Racing: contenders are re-evaluated until paired t intervals separate them from the leader."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from aira_jax.compose.racing import Standing, race, t_interval


def _fitness(true_means, *, shared_sd, own_sd, seed=0):
  """evaluate(layout, seed) = true mean + noise shared by every layout at that seed + the layout's own noise,
  and a log of the calls."""
  rng = np.random.default_rng(seed)
  shared = rng.normal(0.0, shared_sd, size=100)
  own = {layout: rng.normal(0.0, own_sd, size=100) for layout in true_means}
  calls = []

  def evaluate(layout, seed):
    calls.append((layout, seed))
    return true_means[layout] + shared[seed] + own[layout][seed]

  return evaluate, calls


def test_t_interval_matches_scipy():
  values = np.random.default_rng(3).normal(2.0, 0.5, size=7)
  expected = stats.t.interval(0.9, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
  assert t_interval(values.tolist(), 0.9) == pytest.approx(expected)
  assert all(math.isnan(v) for v in t_interval([1.0], 0.9))


def test_a_clearly_worse_layout_is_dropped_and_a_tied_one_is_kept():
  evaluate, calls = _fitness({"good": 0.50, "twin": 0.50, "bad": 0.30}, shared_sd=0.02, own_sd=0.01, seed=2)
  standings = race(evaluate, ["good", "twin", "bad"], range(8), lower_is_better=False, min_repeats=3)
  by_layout = {s.layout: s for s in standings}
  assert by_layout["bad"].status == "worse" and by_layout["bad"].rounds == 3
  assert {by_layout["good"].status, by_layout["twin"].status} == {"best", "tied"}
  assert standings[-1].layout == "bad"
  # The eliminated layout costs no evaluation after round 3; the tied pair uses the whole budget.
  assert sum(layout == "bad" for layout, _ in calls) == 3
  assert by_layout["good"].repeats == by_layout["twin"].repeats == 8
  tied = by_layout["twin"] if by_layout["twin"].status == "tied" else by_layout["good"]
  low, high = tied.difference_interval
  assert low < 0 < high


def test_a_truly_tied_layout_is_rarely_dropped():
  # 400 races of two identical layouts and a worse one, 8 seeds: the twin is wrongly dropped in at most
  # 1 - confidence of them (the Bonferroni-corrected looks), while the worse one is always caught.
  wrongly, caught = 0, 0
  for trial in range(400):
    evaluate, _ = _fitness({"good": 0.5, "twin": 0.5, "bad": 0.47}, shared_sd=0.03, own_sd=0.01, seed=100 + trial)
    status = {s.layout: s.status for s in race(evaluate, ["good", "twin", "bad"], range(8), lower_is_better=False)}
    wrongly += "worse" in (status["good"], status["twin"])
    caught += status["bad"] == "worse"
  assert wrongly / 400 <= 0.10
  assert caught / 400 >= 0.9


def test_common_random_numbers_separate_what_unpaired_intervals_cannot():
  # A real gap of 0.02 under shared seed noise of sd 0.05 and own noise of sd 0.003.
  evaluate, _ = _fitness({"a": 0.52, "b": 0.50}, shared_sd=0.05, own_sd=0.003, seed=1)
  standings = race(evaluate, ["a", "b"], range(6), lower_is_better=False, min_repeats=3)
  assert [(s.layout, s.status) for s in standings] == [("a", "best"), ("b", "worse")]
  a, b = standings
  assert a.interval[0] < b.interval[1]  # the unpaired intervals overlap: they alone would call it a tie


def test_lower_is_better_and_failures():
  true = {"low": 1.0, "high": 1.5, "broken": 0.5}
  evaluate, _ = _fitness(true, shared_sd=0.05, own_sd=0.02)

  def flaky(layout, seed):
    return None if layout == "broken" and seed == 1 else evaluate(layout, seed)

  standings = race(flaky, ["high", "broken", "low"], range(5), lower_is_better=True, min_repeats=3)
  assert [(s.layout, s.status) for s in standings] == [("low", "best"), ("high", "worse"), ("broken", "failed")]
  assert standings[2].repeats == 1 and standings[1].difference > 0


def test_standings_round_trip_through_plain_values():
  evaluate, _ = _fitness({"x": 0.4, "y": 0.41}, shared_sd=0.01, own_sd=0.01)
  for standing in race(evaluate, ["x", "y"], range(4), lower_is_better=False):
    plain = json.loads(json.dumps(standing.to_dict()).replace("NaN", "null"))  # as the store keeps it
    again = Standing.from_dict(plain)
    assert again.scores == standing.scores and again.status == standing.status
    assert again.mean == pytest.approx(standing.mean)


@pytest.mark.parametrize("kwargs, message", [(dict(confidence=1.0), "confidence"), (dict(min_repeats=1), "min_repeats")])
def test_bad_settings_are_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    race(lambda layout, seed: 0.0, ["x"], range(3), lower_is_better=False, **kwargs)
