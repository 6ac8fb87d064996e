"""Tests for the statistics of `experiments/bench/proxy_calibration.py` against scipy (no training)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

import proxy_calibration as pc  # noqa: E402


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("ties", [False, True])
def test_spearman_and_ranks_match_scipy(ties):
  rng = np.random.default_rng(0)
  for n in (3, 5, 24, 100):
    for _ in range(20):
      x = rng.integers(0, 4, n).astype(float) if ties else rng.standard_normal(n)
      y = 0.5 * x + rng.standard_normal(n) if not ties else rng.integers(0, 4, n).astype(float)
      np.testing.assert_allclose(pc.rankdata(x), stats.rankdata(x))
      expected = stats.spearmanr(x, y).statistic
      if np.isnan(expected):
        assert np.isnan(pc.spearman(x, y))
      else:
        assert pc.spearman(x, y) == pytest.approx(expected, abs=1e-12)


def test_spearman_edge_cases():
  assert pc.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
  assert pc.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  assert np.isnan(pc.spearman([1, 1, 1], [1, 2, 3]))
  assert np.isnan(pc.spearman([1], [2]))
  with pytest.raises(ValueError):
    pc.spearman([1, 2], [1, 2, 3])


def test_bootstrap_matches_a_direct_scipy_bootstrap():
  rng = np.random.default_rng(1)
  x = rng.standard_normal(24)
  y = x + rng.standard_normal(24)
  indices = pc.bootstrap_indices(24, 500, seed=3)
  low, high = pc.bootstrap_spearman(x, y, level=0.9, indices=indices)
  rhos = [stats.spearmanr(x[i], y[i]).statistic for i in indices]
  expected = np.nanpercentile(rhos, [5, 95])
  assert (low, high) == pytest.approx(tuple(expected), abs=1e-12)
  assert low < pc.spearman(x, y) < high
  assert pc.bootstrap_spearman(x, y, resamples=500, seed=3) == (low, high)  # seeded: reproducible


def test_bootstrap_of_a_perfect_ranking_and_of_constant_data():
  x = np.arange(10.0)
  assert pc.bootstrap_spearman(x, 2 * x, resamples=200) == pytest.approx((1.0, 1.0))
  assert all(np.isnan(v) for v in pc.bootstrap_spearman(x, np.zeros(10), resamples=50))


def test_mean_pairwise_spearman_and_paired_difference():
  rng = np.random.default_rng(2)
  rows = rng.standard_normal((3, 12))
  expected = np.mean([stats.spearmanr(rows[i], rows[j]).statistic for i, j in ((0, 1), (0, 2), (1, 2))])
  assert pc.mean_pairwise_spearman(rows) == pytest.approx(expected)
  assert np.isnan(pc.mean_pairwise_spearman(rows[:1]))
  y = rng.standard_normal(12)
  low, high = pc.paired_bootstrap_difference(y, y, y, pc.bootstrap_indices(12, 100))
  assert (low, high) == (0.0, 0.0)
