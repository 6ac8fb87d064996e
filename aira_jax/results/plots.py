"""PNG plots of a run: best metric so far per agent, the scaling frontier with its power-law fit, isoFLOP curves.

matplotlib is an optional dependency (`pip install "aira_jax[plots]"`); it is imported inside the functions, so
importing this module never needs it, and a missing matplotlib raises `PlotsUnavailable` for the caller to
report. Figures are drawn with matplotlib's object-oriented API on an Agg canvas, never through pyplot: no
window, no global figure registry to leak or to race on when agent threads plot, and nothing to close after
`savefig`. Each `plot_*` function writes one PNG of `figsize` inches at `dpi` and returns its path; the
`*_figure` functions build the same figure without saving it (for tests and notebooks).

What is drawn is decided by small pure helpers (`check_band`, `split_by_interior`, `parabola_curve`,
`shared_limits`), so it can be tested without looking at pixels. An optimum at the edge of its width grid is
drawn hollow: the true optimum may lie beyond the grid, so its loss is only an upper bound.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

FIGSIZE = (8.0, 5.0)
"""Default figure size in inches (width, height)."""

DPI = 100
"""Default resolution: a default figure is 800 x 500 pixels."""

EDGE_NOTE = "hollow = at the grid edge (upper bound)"
"""The legend entry that explains hollow markers (optima at the edge of the width grid)."""

BAND_NOTE = "shaded = confidence band"
"""The legend entry that explains the shaded band around a frontier."""


class PlotsUnavailable(ImportError):
  """matplotlib is not installed, so no plots can be drawn."""


@dataclasses.dataclass(frozen=True)
class FrontierData:
  """One family's compute-optimal frontier: the isoFLOP minima and the fit L = a * C^-b (None when unfitted).

  Attributes:
    budgets: training FLOPs C of each minimum, ascending or not.
    losses: the minimum loss at each budget, same length as `budgets`.
    a, b: the fitted power law L = a * C^-b, or None when there was no fit.
    band: (budgets grid, lower, upper) of the fit's confidence band, three sequences of one length with
      lower <= upper (the caller computes it), or None.
    interior: per budget, whether its optimum is inside the width grid (False: at the edge, so its loss is an
      upper bound, drawn hollow), same length as `budgets`; None: all drawn as interior.
  """

  budgets: Sequence[float]
  losses: Sequence[float]
  a: float | None = None
  b: float | None = None
  band: tuple[Sequence[float], Sequence[float], Sequence[float]] | None = None
  interior: Sequence[bool] | None = None

  def __post_init__(self):
    if len(self.budgets) != len(self.losses):
      raise ValueError(f"FrontierData: {len(self.budgets)} budgets but {len(self.losses)} losses")
    if (self.a is None) != (self.b is None):
      raise ValueError("FrontierData: give both a and b of the fit, or neither")
    if self.band is not None:
      check_band(self.band)
    if self.interior is not None and len(self.interior) != len(self.budgets):
      raise ValueError(f"FrontierData: {len(self.budgets)} budgets but {len(self.interior)} interior flags")


def check_band(band: tuple[Sequence[float], Sequence[float], Sequence[float]]) -> None:
  """ValueError unless `band` is (grid, lower, upper): three sequences of one length, lower <= upper wherever
  both are finite."""
  if len(band) != 3:
    raise ValueError(f"band: expected (grid, lower, upper), got {len(band)} sequences")
  grid, lower, upper = band
  if not len(grid) == len(lower) == len(upper):
    raise ValueError(f"band: grid, lower and upper differ in length ({len(grid)}, {len(lower)}, {len(upper)})")
  crossed = [c for c, lo, hi in zip(grid, lower, upper) if math.isfinite(lo) and math.isfinite(hi) and lo > hi]
  if crossed:
    raise ValueError(f"band: lower > upper at {len(crossed)} grid point(s), first at {crossed[0]:g}")


def _drawable(*values: float) -> bool:
  """Whether every value is finite and positive (a log axis shows nothing else)."""
  return all(v is not None and math.isfinite(v) and v > 0 for v in values)


def band_points(band: tuple[Sequence[float], Sequence[float], Sequence[float]]) -> list[tuple[float, float, float]]:
  """The band's (C, lower, upper) triples that a log-log axis can show, sorted by C."""
  return sorted((float(c), float(lo), float(hi)) for c, lo, hi in zip(*band) if _drawable(c, lo, hi))


def split_by_interior(frontier: FrontierData) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
  """The frontier's drawable (C, loss) minima split into (interior, at the grid edge), in the order given."""
  flags = frontier.interior if frontier.interior is not None else [True] * len(frontier.budgets)
  inside, edge = [], []
  for c, loss, interior in zip(frontier.budgets, frontier.losses, flags):
    if _drawable(c, loss):
      (inside if interior else edge).append((float(c), float(loss)))
  return inside, edge


def parabola_curve(coefficients: tuple[float, float, float], n_min: float, n_max: float, *, extend: float = 0.1,
                   count: int = 64) -> tuple[Any, Any]:
  """(N, loss) arrays of loss = c2 x^2 + c1 x + c0 with x = ln N, over [n_min, n_max] widened on each side by
  `extend` of its width in ln N (by 0.25 in ln N about a single N). ValueError unless 0 < n_min <= n_max."""
  import numpy as np

  if not 0 < n_min <= n_max:
    raise ValueError(f"parabola_curve: need 0 < n_min <= n_max, got {n_min}, {n_max}")
  lo, hi = math.log(n_min), math.log(n_max)
  pad = extend * (hi - lo) if hi > lo else 0.25
  x = np.linspace(lo - pad, hi + pad, count)
  c2, c1, c0 = coefficients
  return np.exp(x), c2 * x ** 2 + c1 * x + c0


def shared_limits(values: Sequence[float], *, log: bool = False, margin: float = 0.05) -> tuple[float, float] | None:
  """(low, high) axis limits holding every finite value (every positive one when `log`), widened on each side
  by `margin` of the span (in log10 when `log`; a span of 1, one decade when `log`, when all values are equal).
  None when no value qualifies."""
  kept = [float(v) for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
  if not kept:
    return None
  lo, hi = min(kept), max(kept)
  if log:
    lo, hi = math.log10(lo), math.log10(hi)
  pad = margin * ((hi - lo) or 1.0)
  lo, hi = lo - pad, hi + pad
  return (10 ** lo, 10 ** hi) if log else (lo, hi)


def _closest(budget: float, keys) -> float | None:
  """The key equal to `budget` up to float rounding (budgets pass through JSON and arithmetic), or None."""
  return next((k for k in keys if math.isclose(float(k), budget, rel_tol=1e-9)), None)


def running_best(points: Sequence[tuple[float, float | None]], lower_is_better: bool) -> list[tuple[float, float]]:
  """The best metric so far after each scored point, in the order given.

  `points` are (x, metric) pairs, e.g. (minutes, metric); a metric of None (a buggy node) or a non-finite one is
  skipped. Returns one (x, best metric among this and the earlier scored points) pair per scored point.
  """
  best: float | None = None
  steps: list[tuple[float, float]] = []
  for x, metric in points:
    if metric is None or not math.isfinite(metric):
      continue
    if best is None or (metric < best if lower_is_better else metric > best):
      best = float(metric)
    steps.append((float(x), best))
  return steps


def _new_figure(figsize: tuple[float, float], dpi: int, grid: tuple[int, int] | None = None) -> tuple[Any, Any]:
  """A figure on an Agg canvas and its one axes, or with `grid` = (rows, columns) a 2-D array of axes."""
  try:
    import matplotlib  # noqa: F401  (first, so a blocked matplotlib fails here even if submodules are cached)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError as e:
    raise PlotsUnavailable(f'plots need matplotlib, which is not installed: pip install "aira_jax[plots]" ({e})') from e
  figure = Figure(figsize=figsize, dpi=dpi)
  FigureCanvasAgg(figure)
  axes = figure.subplots() if grid is None else figure.subplots(*grid, squeeze=False)
  return figure, axes


def _save(figure: Any, path: str | os.PathLike) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, format="png", dpi=figure.dpi)
  return path


def plot_best_so_far(series: Mapping[str, Sequence[tuple[float, float | None]]], path: str | os.PathLike, *,
                     lower_is_better: bool, xlabel: str = "minutes", ylabel: str = "metric",
                     title: str = "Best metric so far", figsize: tuple[float, float] = FIGSIZE,
                     dpi: int = DPI) -> pathlib.Path:
  """One step line per agent of the best metric so far, and one over all agents; writes a PNG to `path`.

  `series` maps an agent id to its raw (x, metric) points in the order they happened (x = minutes or
  evaluation index; metric None for a buggy node). The "all agents" line merges every point sorted by x.
  """
  figure, ax = _new_figure(figsize, dpi)
  everything = sorted((p for points in series.values() for p in points), key=lambda p: p[0])
  lines = [(agent, running_best(points, lower_is_better), {}) for agent, points in series.items()]
  if len(series) > 1:
    lines.append(("all agents", running_best(everything, lower_is_better), {"color": "black", "linewidth": 2.5}))
  drawn = 0
  for label, steps, style in lines:
    if steps:
      xs, ys = zip(*steps)
      (line,) = ax.step(xs, ys, where="post", label=label, **style)
      ax.plot(xs[-1:], ys[-1:], marker="o", color=line.get_color())
      drawn += 1
  if drawn:
    ax.legend(loc="best", fontsize="small")
  else:
    ax.text(0.5, 0.5, "no scored points yet", ha="center", va="center", transform=ax.transAxes)
  ax.set(xlabel=xlabel, ylabel=f"best {ylabel} ({'lower' if lower_is_better else 'higher'} is better)",
         title=title)
  ax.grid(True, alpha=0.3)
  return _save(figure, path)


def _legend_note(label: str, **style) -> Any:
  """A legend-only handle (nothing drawn on the axes)."""
  from matplotlib.lines import Line2D
  from matplotlib.patches import Patch
  if "facecolor" in style:
    return Patch(label=label, **style)
  return Line2D([], [], linestyle="none", label=label, **style)


def _finish_legend(ax: Any, notes: list[Any], fontsize: str) -> None:
  handles, labels = ax.get_legend_handles_labels()
  if labels or notes:
    ax.legend(handles=handles + notes, loc="best", fontsize=fontsize)


def scaling_figure(frontiers: Mapping[str, FrontierData], *, title: str = "Compute-optimal loss",
                   xlabel: str = "training FLOPs C", ylabel: str = "loss", figsize: tuple[float, float] = FIGSIZE,
                   dpi: int = DPI) -> Any:
  """The figure `plot_scaling` saves (see there), not saved."""
  import numpy as np  # a dependency of matplotlib and of aira_jax

  figure, ax = _new_figure(figsize, dpi)
  any_edge = any_band = False
  for index, (family, frontier) in enumerate(frontiers.items()):
    color = f"C{index % 10}"
    label = family if frontier.b is None else f"{family}: b = {frontier.b:.3f}"
    inside, edge = split_by_interior(frontier)
    for points, hollow in ((inside, False), (edge, True)):
      if points:
        budgets, losses = zip(*points)
        ax.plot(budgets, losses, "o", color=color, label=label, markeredgewidth=1.5,
                **({"markerfacecolor": "none"} if hollow else {}))
        label, any_edge = None, any_edge or hollow
    drawn = inside + edge
    if frontier.a is not None and frontier.b is not None and drawn:
      grid = np.geomspace(min(c for c, _ in drawn), max(c for c, _ in drawn), 64)
      ax.plot(grid, frontier.a * grid ** -frontier.b, "-", color=color)
    band = band_points(frontier.band) if frontier.band is not None else []
    if band:
      grid, lower, upper = zip(*band)
      ax.fill_between(grid, lower, upper, color=color, alpha=0.2, linewidth=0)
      any_band = True
  ax.set_xscale("log")
  ax.set_yscale("log")
  from matplotlib.ticker import FuncFormatter  # losses span less than a decade: plain numbers, not 3x10^0
  ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
  ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  ax.grid(True, which="both", alpha=0.3)
  notes = []
  if any_edge:
    notes.append(_legend_note(EDGE_NOTE, marker="o", markerfacecolor="none", markeredgecolor="gray"))
  if any_band:
    notes.append(_legend_note(BAND_NOTE, facecolor="gray", alpha=0.2))
  _finish_legend(ax, notes, "small")
  return figure


def plot_scaling(frontiers: Mapping[str, FrontierData], path: str | os.PathLike, *,
                 title: str = "Compute-optimal loss", xlabel: str = "training FLOPs C", ylabel: str = "loss",
                 figsize: tuple[float, float] = FIGSIZE, dpi: int = DPI) -> pathlib.Path:
  """Per family, the isoFLOP minima (log-log) and the fitted line L = a * C^-b across its budgets; writes a PNG.

  Each family has one colour: its minima (hollow where `interior` says the optimum is at the grid edge, an
  upper bound on the loss), its fit, and its confidence `band` shaded at alpha 0.2. The legend names each
  family with its exponent b and explains hollow markers and the band when there are any. Points with a
  non-positive budget or loss (which a log axis cannot show) are left out.
  """
  return _save(scaling_figure(frontiers, title=title, xlabel=xlabel, ylabel=ylabel, figsize=figsize, dpi=dpi),
               path)


def _isoflop_data(points: Mapping[str, Sequence[tuple[float, int, float]]]) -> dict[str, dict[float, list]]:
  """Per family, per budget, the (N, loss) points with a finite loss, sorted by N."""
  data: dict[str, dict[float, list[tuple[int, float]]]] = {}
  for family, triples in points.items():
    by_budget = data.setdefault(family, {})
    for budget, params, loss in triples:
      if loss is not None and math.isfinite(loss):
        by_budget.setdefault(float(budget), []).append((int(params), float(loss)))
    for curve in by_budget.values():
      curve.sort()
  return data


def isoflop_figure(points: Mapping[str, Sequence[tuple[float, int, float]]], *,
                   parabolas: Mapping[str, Mapping[float, tuple[float, float, float]]] | None = None,
                   edge: Mapping[str, set[float]] | None = None, title: str = "IsoFLOP curves",
                   xlabel: str = "parameters N", ylabel: str = "loss", figsize: tuple[float, float] | None = None,
                   dpi: int = DPI) -> Any:
  """The figure `plot_isoflop_curves` saves (see there), not saved."""
  data = _isoflop_data(points)
  families = list(points) or ["(no families)"]
  columns = min(len(families), 3)
  rows = math.ceil(len(families) / columns)
  figure, axes = _new_figure(figsize or (5.0 * columns, 4.0 * rows), dpi, grid=(rows, columns))
  budgets = sorted({b for by_budget in data.values() for b in by_budget})
  colors = {b: f"C{i % 10}" for i, b in enumerate(budgets)}  # one colour per budget in every subplot
  xs, ys = [], []
  for ax, family in zip(axes.flat, families):
    by_budget = data.get(family, {})
    fits = (parabolas or {}).get(family, {})
    at_edge = (edge or {}).get(family, set())
    for budget in sorted(by_budget):
      curve, color = by_budget[budget], colors[budget]
      params, losses = zip(*curve)
      xs += params
      ys += losses
      ax.plot(params, losses, "o-", color=color, label=f"C = {budget:.1e}")
      best = min(curve, key=lambda p: p[1])
      hollow = _closest(budget, at_edge) is not None
      ax.plot([best[0]], [best[1]], "*", markersize=14, color=color, markeredgewidth=1.5,
              **({"markerfacecolor": "none"} if hollow else {}))
      if hollow:
        ax.annotate("edge", best, textcoords="offset points", xytext=(6, 6), fontsize="x-small", color=color)
      key = _closest(budget, fits)
      if key is not None:
        grid, fitted = parabola_curve(fits[key], min(params), max(params))
        ax.plot(grid, fitted, "--", color=color, linewidth=1.0)
        xs += [grid[0], grid[-1]]
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=family)
    ax.grid(True, which="both", alpha=0.3)
    if by_budget:
      hollow_any = any(_closest(b, at_edge) is not None for b in by_budget)
      notes = [_legend_note(EDGE_NOTE, marker="*", markersize=10, markerfacecolor="none", markeredgecolor="gray")]
      _finish_legend(ax, notes if hollow_any else [], "x-small")
  xlim, ylim = shared_limits(xs, log=True), shared_limits(ys, margin=0.08)
  for ax in list(axes.flat)[:len(families)]:
    if xlim and ylim:
      ax.set_xlim(*xlim)
      ax.set_ylim(*ylim)
  for ax in list(axes.flat)[len(families):]:
    ax.set_visible(False)
  figure.suptitle(title)
  figure.tight_layout()
  return figure


def plot_isoflop_curves(points: Mapping[str, Sequence[tuple[float, int, float]]], path: str | os.PathLike, *,
                        parabolas: Mapping[str, Mapping[float, tuple[float, float, float]]] | None = None,
                        edge: Mapping[str, set[float]] | None = None, title: str = "IsoFLOP curves",
                        xlabel: str = "parameters N", ylabel: str = "loss",
                        figsize: tuple[float, float] | None = None, dpi: int = DPI) -> pathlib.Path:
  """Loss against log N, one curve per budget, one subplot per family; writes a PNG to `path`.

  `points` maps a family to (budget C, parameter count N, loss) triples; each curve's minimum is starred.
  `parabolas` gives per family, per budget, the fit (c2, c1, c0) of loss = c2 x^2 + c1 x + c0 with x = ln N,
  drawn dashed over the budget's sampled N range widened by 10% on each side. A budget in `edge[family]` has its
  optimum at the grid edge: its star is hollow and marked "edge" (its loss is an upper bound). A budget has the
  same colour in every subplot, and every subplot has the same x range (the points and their parabolas) and y
  range (the points; a parabola may leave the frame) so families can be compared at a glance. Non-finite losses
  (diverged runs) are left out. Default size: 5 x 4 inches per subplot, up to 3 per row.
  """
  return _save(isoflop_figure(points, parabolas=parabolas, edge=edge, title=title, xlabel=xlabel, ylabel=ylabel,
                              figsize=figsize, dpi=dpi), path)
