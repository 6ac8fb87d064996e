"""Tests for `aira_jax.results.plots`: the running best, the drawing helpers' values (band checks, hollow markers,
fitted parabolas, shared limits), what the scaling and isoFLOP figures draw, PNGs of the expected size, and a
clear error without matplotlib."""

import math
import sys

import pytest

from aira_jax.results import plots
from aira_jax.results.plots import (FrontierData, PlotsUnavailable, check_band, parabola_curve, running_best,
                                    shared_limits, split_by_interior)

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


def test_frontier_data_validates_band_and_interior():
  with pytest.raises(ValueError, match=r"band: grid, lower and upper differ in length \(3, 2, 3\)"):
    FrontierData([1e15], [3.0], band=([1e15, 1e16, 1e17], [2.9, 2.8], [3.1, 3.0, 2.9]))
  with pytest.raises(ValueError, match="expected \\(grid, lower, upper\\), got 2"):
    FrontierData([1e15], [3.0], band=([1e15], [2.9]))
  with pytest.raises(ValueError, match="lower > upper at 1 grid point"):
    FrontierData([1e15], [3.0], band=([1e15, 1e16], [2.9, 3.2], [3.1, 3.0]))
  with pytest.raises(ValueError, match="2 budgets but 1 interior flags"):
    FrontierData([1e15, 1e16], [3.0, 2.9], interior=[True])
  check_band(([1e15, 1e16], [math.nan, 2.8], [3.1, 2.8]))  # NaN gaps and lower == upper are allowed
  assert FrontierData([1e15], [3.0]).band is None and FrontierData([1e15], [3.0]).interior is None


def test_split_by_interior_keeps_order_and_drops_what_a_log_axis_cannot_show():
  frontier = FrontierData([1e15, 1e16, 1e17, 1e18, 0.0], [3.0, 2.8, math.nan, 2.5, 2.4],
                          interior=[True, False, True, False, True])
  assert split_by_interior(frontier) == ([(1e15, 3.0)], [(1e16, 2.8), (1e18, 2.5)])
  assert split_by_interior(FrontierData([1e16, 1e15], [2.8, 3.0])) == ([(1e16, 2.8), (1e15, 3.0)], [])


def test_parabola_curve_values_and_extent():
  # loss = 0.5 (x - ln 1e6)^2 + 2: minimum 2 at N = 1e6; sampled N from 1e5 to 1e7 (a width of 2 ln 10).
  x0 = math.log(1e6)
  n, loss = parabola_curve((0.5, -x0, 0.5 * x0 ** 2 + 2.0), 1e5, 1e7, count=5)
  width = 2 * math.log(10)
  assert [math.log(v) for v in n] == pytest.approx([x0 - 0.6 * width, x0 - 0.3 * width, x0, x0 + 0.3 * width,
                                                     x0 + 0.6 * width])
  assert list(loss) == pytest.approx([2.0 + 0.5 * (0.6 * width) ** 2, 2.0 + 0.5 * (0.3 * width) ** 2, 2.0,
                                      2.0 + 0.5 * (0.3 * width) ** 2, 2.0 + 0.5 * (0.6 * width) ** 2])
  n, _ = parabola_curve((1.0, 0.0, 0.0), 1e6, 1e6, count=3, extend=0.5)  # one N: 0.25 either side in ln N
  assert [math.log(v) for v in n] == pytest.approx([x0 - 0.25, x0, x0 + 0.25])
  with pytest.raises(ValueError, match="0 < n_min <= n_max"):
    parabola_curve((1.0, 0.0, 0.0), 1e7, 1e6)


def test_shared_limits():
  assert shared_limits([2.0, 3.0, math.nan, None, 4.0]) == pytest.approx((1.9, 4.1))
  assert shared_limits([1e5, 1e7], log=True, margin=0.5) == pytest.approx((1e4, 1e8))
  assert shared_limits([-1.0, 1e6], log=True, margin=0.0) == pytest.approx((1e6, 1e6))  # non-positive dropped
  assert shared_limits([3.0, 3.0], margin=0.1) == pytest.approx((2.9, 3.1))
  assert shared_limits([math.inf]) is None and shared_limits([0.0], log=True) is None


def _hollow(lines):
  return [line for line in lines if line.get_markerfacecolor() == "none"]


def test_scaling_figure_draws_bands_and_hollow_edges(needs_matplotlib):
  budgets = [1e15, 1e16, 1e17]
  band = (budgets, [2.9, 2.6, 2.3], [3.1, 2.8, 2.5])
  frontiers = {"transformer": FrontierData(budgets, [3.0, 2.7, 2.4], a=20.0, b=0.05, band=band,
                                           interior=[True, True, False]),
               "hybrid": FrontierData(budgets, [2.9, 2.6, 2.3])}
  ax = plots.scaling_figure(frontiers).axes[0]
  assert len(ax.collections) == 1  # one band: transformer's
  [band_poly] = ax.collections
  assert band_poly.get_alpha() == pytest.approx(0.2)
  import matplotlib.colors
  assert tuple(band_poly.get_facecolor()[0]) == pytest.approx(matplotlib.colors.to_rgba("C0", 0.2))
  [hollow] = _hollow(ax.lines)
  assert list(hollow.get_xdata()) == [1e17] and list(hollow.get_ydata()) == [2.4]
  transformer_marks = [line for line in ax.lines if line.get_label() == "transformer: b = 0.050"]
  assert list(transformer_marks[0].get_xdata()) == [1e15, 1e16]
  assert hollow.get_color() == transformer_marks[0].get_color() == "C0"
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels == ["transformer: b = 0.050", "hybrid", plots.EDGE_NOTE, plots.BAND_NOTE]
  plain = plots.scaling_figure({"hybrid": FrontierData(budgets, [2.9, 2.6, 2.3])}).axes[0]
  assert not plain.collections and not _hollow(plain.lines)
  assert [t.get_text() for t in plain.get_legend().get_texts()] == ["hybrid"]


def test_isoflop_figure_parabolas_edges_and_shared_ranges(needs_matplotlib):
  points = {"transformer": [(1e15, 1_000_000, 3.2), (1e15, 3_000_000, 3.0), (1e15, 9_000_000, 3.1),
                            (1e16, 3_000_000, 2.8), (1e16, 9_000_000, 2.6)],
            "hybrid": [(1e16, 1_000_000, 3.9), (1e16, 2_000_000, 3.6)]}
  parabolas = {"transformer": {1e15: (0.1, -3.0, 25.0), 1e16 * (1 + 1e-12): (0.2, -6.0, 47.0)}}
  figure = plots.isoflop_figure(points, parabolas=parabolas, edge={"transformer": {1e16}, "hybrid": {1e16}})
  transformer, hybrid = figure.axes
  assert transformer.get_ylim() == hybrid.get_ylim() == pytest.approx(shared_limits([3.2, 3.0, 3.1, 2.8, 2.6, 3.9,
                                                                                      3.6], margin=0.08))
  assert transformer.get_xlim() == hybrid.get_xlim()
  assert transformer.get_xlim()[0] < 1e6 and transformer.get_xlim()[1] > 9e6  # the parabolas' extension fits
  dashed = [line for line in transformer.lines if line.get_linestyle() == "--"]
  assert len(dashed) == 2  # the 1e16 fit is found although its key differs by float rounding
  assert [line.get_color() for line in dashed] == ["C0", "C1"]
  assert min(dashed[0].get_xdata()) < 1e6 and max(dashed[0].get_xdata()) > 9e6
  assert [list(line.get_xdata()) for line in _hollow(transformer.lines)] == [[9_000_000]]
  assert [list(line.get_xdata()) for line in _hollow(hybrid.lines)] == [[2_000_000]]
  assert [line.get_color() for line in _hollow(hybrid.lines)] == ["C1"]  # C = 1e16's colour in both subplots
  assert [t.get_text() for t in transformer.texts] == ["edge"]
  assert plots.EDGE_NOTE in [t.get_text() for t in hybrid.get_legend().get_texts()]
  plain = plots.isoflop_figure({"hybrid": points["hybrid"]}).axes[0]
  assert not _hollow(plain.lines) and not plain.texts
  assert not [line for line in plain.lines if line.get_linestyle() == "--"]


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
  banded = {"transformer": FrontierData(budgets, frontiers["transformer"].losses, a=20.0, b=0.05,
                                        band=(budgets, [1.8, 1.6, 1.4], [2.0, 1.8, 1.6]),
                                        interior=[True, True, False])}
  assert _png_shape(plots.plot_scaling(banded, tmp_path / "banded.png", dpi=60)) == (300, 480)


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
  fitted = plots.plot_isoflop_curves(points, tmp_path / "fitted.png", dpi=50, edge={"hybrid": {1e15}},
                                     parabolas={"transformer": {1e15: (0.1, -3.0, 25.0)}})
  assert _png_shape(fitted) == (200, 500)


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
