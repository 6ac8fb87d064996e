"""Tests for `aira_jax.results.plots`: the running best, PNGs of the expected size, and a clear error without
matplotlib."""

import math
import sys

import pytest

from aira_jax.results import plots
from aira_jax.results.plots import FrontierData, PlotsUnavailable, running_best

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_shape(path):
  """(height, width) in pixels read back by matplotlib, after checking the file is a non-empty PNG."""
  data = path.read_bytes()
  assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
  import matplotlib.image
  return matplotlib.image.imread(path).shape[:2]


@pytest.fixture
def needs_matplotlib():
  pytest.importorskip("matplotlib")


def test_running_best_by_hand():
  points = [(0.0, None), (1.0, 3.0), (2.0, 2.0), (3.0, 2.5), (4.0, math.nan), (5.0, 1.0), (6.0, 4.0)]
  assert running_best(points, lower_is_better=True) == [(1.0, 3.0), (2.0, 2.0), (3.0, 2.0), (5.0, 1.0), (6.0, 1.0)]
  assert running_best(points, lower_is_better=False) == [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0), (5.0, 3.0), (6.0, 4.0)]
  assert running_best([(0, None), (1, math.inf)], lower_is_better=True) == []
  assert running_best([], lower_is_better=False) == []


def test_frontier_data_validates_lengths_and_fit():
  with pytest.raises(ValueError, match="2 budgets but 1 losses"):
    FrontierData(budgets=[1e15, 1e16], losses=[3.0])
  with pytest.raises(ValueError, match="both a and b"):
    FrontierData(budgets=[1e15], losses=[3.0], a=2.0)


def test_best_so_far_png(tmp_path, needs_matplotlib):
  series = {"agent0": [(0.5, 0.4), (1.0, None), (2.0, 0.6)], "agent1": [(0.2, 0.3), (3.0, 0.7)]}
  path = plots.plot_best_so_far(series, tmp_path / "plots" / "best.png", lower_is_better=False)
  assert path == tmp_path / "plots" / "best.png"
  assert _png_shape(path) == (500, 800)
  small = plots.plot_best_so_far(series, tmp_path / "small.png", lower_is_better=True, figsize=(4.0, 3.0), dpi=50,
                                 xlabel="evaluation", title="search")
  assert _png_shape(small) == (150, 200)


def test_best_so_far_with_nothing_scored_still_writes_a_png(tmp_path, needs_matplotlib):
  path = plots.plot_best_so_far({"agent0": [(1.0, None)]}, tmp_path / "empty.png", lower_is_better=True, dpi=40)
  assert _png_shape(path) == (200, 320)


def test_scaling_png(tmp_path, needs_matplotlib):
  budgets = [1e15, 1e16, 1e17]
  frontiers = {
      "transformer": FrontierData(budgets, [20 * c ** -0.05 for c in budgets], a=20.0, b=0.05),
      "hybrid": FrontierData(budgets, [19 * c ** -0.05 for c in budgets], a=19.0, b=0.05),
      "unfitted": FrontierData([1e15], [4.0]),
  }
  path = plots.plot_scaling(frontiers, tmp_path / "scaling.png", dpi=60)
  assert _png_shape(path) == (300, 480)


def test_isoflop_curves_png(tmp_path, needs_matplotlib):
  points = {
      "transformer": [(1e15, 1_000_000, 3.2), (1e15, 3_000_000, 3.0), (1e15, 9_000_000, 3.1),
                      (1e16, 3_000_000, 2.8), (1e16, 9_000_000, 2.6), (1e16, 27_000_000, math.nan)],
      "hybrid": [(1e15, 1_000_000, 3.1), (1e15, 3_000_000, 2.9)],
  }
  path = plots.plot_isoflop_curves(points, tmp_path / "isoflop.png", dpi=50)
  assert _png_shape(path) == (200, 500)  # two subplots of 5 x 4 inches side by side
  one = plots.plot_isoflop_curves({"hybrid": points["hybrid"]}, tmp_path / "one.png", dpi=50)
  assert _png_shape(one) == (200, 250)
  four = plots.plot_isoflop_curves({f"f{i}": points["hybrid"] for i in range(4)}, tmp_path / "four.png", dpi=20)
  assert _png_shape(four) == (160, 300)  # 3 per row, 2 rows


def test_missing_matplotlib_raises_plots_unavailable(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  calls = [
      lambda: plots.plot_best_so_far({"a": [(0.0, 1.0)]}, tmp_path / "a.png", lower_is_better=True),
      lambda: plots.plot_scaling({"f": FrontierData([1e15], [3.0])}, tmp_path / "b.png"),
      lambda: plots.plot_isoflop_curves({"f": [(1e15, 10, 3.0)]}, tmp_path / "c.png"),
  ]
  for call in calls:
    with pytest.raises(PlotsUnavailable, match=r'pip install "aira_jax\[plots\]"') as raised:
      call()
    assert isinstance(raised.value, ImportError)
  assert not list(tmp_path.iterdir())
