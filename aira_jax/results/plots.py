"""PNG plots of a run: best metric so far per agent, the scaling frontier with its power-law fit, isoFLOP curves.

matplotlib is an optional dependency (`pip install "aira_jax[plots]"`); it is imported inside the functions, so
importing this module never needs it, and a missing matplotlib raises `PlotsUnavailable` for the caller to
report. Figures are drawn with matplotlib's object-oriented API on an Agg canvas, never through pyplot: no
window, no global figure registry to leak or to race on when agent threads plot, and nothing to close after
`savefig`. Each function writes one PNG of `figsize` inches at `dpi` and returns its path.
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


class PlotsUnavailable(ImportError):
  """matplotlib is not installed, so no plots can be drawn."""


@dataclasses.dataclass(frozen=True)
class FrontierData:
  """One family's compute-optimal frontier: the isoFLOP minima and the fit L = a * C^-b (None when unfitted).

  Attributes:
    budgets: training FLOPs C of each minimum, ascending or not.
    losses: the minimum loss at each budget, same length as `budgets`.
    a, b: the fitted power law L = a * C^-b, or None when there was no fit.
  """

  budgets: Sequence[float]
  losses: Sequence[float]
  a: float | None = None
  b: float | None = None

  def __post_init__(self):
    if len(self.budgets) != len(self.losses):
      raise ValueError(f"FrontierData: {len(self.budgets)} budgets but {len(self.losses)} losses")
    if (self.a is None) != (self.b is None):
      raise ValueError("FrontierData: give both a and b of the fit, or neither")


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


def plot_scaling(frontiers: Mapping[str, FrontierData], path: str | os.PathLike, *,
                 title: str = "Compute-optimal loss", xlabel: str = "training FLOPs C", ylabel: str = "loss",
                 figsize: tuple[float, float] = FIGSIZE, dpi: int = DPI) -> pathlib.Path:
  """Per family, the isoFLOP minima (log-log) and the fitted line L = a * C^-b across its budgets; writes a PNG.

  The legend names each family with its exponent b. Points with a non-positive budget or loss (which a log
  axis cannot show) are left out.
  """
  import numpy as np  # a dependency of matplotlib and of aira_jax

  figure, ax = _new_figure(figsize, dpi)
  for family, frontier in frontiers.items():
    points = [(c, l) for c, l in zip(frontier.budgets, frontier.losses) if c > 0 and l > 0 and math.isfinite(l)]
    label = family if frontier.b is None else f"{family}: b = {frontier.b:.3f}"
    color = None
    if points:
      budgets, losses = zip(*points)
      (marks,) = ax.plot(budgets, losses, "o", label=label)
      color, label = marks.get_color(), None
    if frontier.a is not None and frontier.b is not None and points:
      grid = np.geomspace(min(budgets), max(budgets), 64)
      ax.plot(grid, frontier.a * grid ** -frontier.b, "-", color=color, label=label)
  ax.set_xscale("log")
  ax.set_yscale("log")
  from matplotlib.ticker import FuncFormatter  # losses span less than a decade: plain numbers, not 3x10^0
  ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
  ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  ax.grid(True, which="both", alpha=0.3)
  if ax.get_legend_handles_labels()[1]:
    ax.legend(loc="best", fontsize="small")
  return _save(figure, path)


def plot_isoflop_curves(points: Mapping[str, Sequence[tuple[float, int, float]]], path: str | os.PathLike, *,
                        title: str = "IsoFLOP curves", xlabel: str = "parameters N", ylabel: str = "loss",
                        figsize: tuple[float, float] | None = None, dpi: int = DPI) -> pathlib.Path:
  """Loss against log N, one curve per budget, one subplot per family; writes a PNG to `path`.

  `points` maps a family to (budget C, parameter count N, loss) triples; each curve's minimum is starred.
  Non-finite losses (diverged runs) are left out. Default size: 5 x 4 inches per subplot, up to 3 per row.
  """
  families = list(points) or ["(no families)"]
  columns = min(len(families), 3)
  rows = math.ceil(len(families) / columns)
  figure, axes = _new_figure(figsize or (5.0 * columns, 4.0 * rows), dpi, grid=(rows, columns))
  for ax, family in zip(axes.flat, families):
    by_budget: dict[float, list[tuple[int, float]]] = {}
    for budget, params, loss in points.get(family, ()):
      if loss is not None and math.isfinite(loss):
        by_budget.setdefault(float(budget), []).append((int(params), float(loss)))
    for budget in sorted(by_budget):
      curve = sorted(by_budget[budget])
      params, losses = zip(*curve)
      (line,) = ax.plot(params, losses, "o-", label=f"C = {budget:.1e}")
      best = min(curve, key=lambda p: p[1])
      ax.plot([best[0]], [best[1]], "*", markersize=14, color=line.get_color())
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=family)
    ax.grid(True, which="both", alpha=0.3)
    if by_budget:
      ax.legend(loc="best", fontsize="x-small")
  for ax in list(axes.flat)[len(families):]:
    ax.set_visible(False)
  figure.suptitle(title)
  figure.tight_layout()
  return _save(figure, path)
