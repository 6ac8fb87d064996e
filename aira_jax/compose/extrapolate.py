"""Composer's extrapolation: grow a layout found at small depth to a target depth, by stretching or stacking.

Stretch writes the layout as runs (symbol, length) and scales every run by s = target_depth / depth, keeping
the run order and the ratio between runs. Stack repeats the whole layout floor(target / depth) times and
fills the remaining layers with a stretched copy.

Rounding (stretch): scaled lengths are apportioned by largest remainder, in exact integer arithmetic. Each run
gets the floor of its exact length l * target / depth; the layers left over go one each to the runs with the
largest fractional parts, a tie going to the earlier (lower) run. Every run keeps at least one layer: a run
rounded to zero is given one layer, taken from the run furthest above its exact length (earlier on a tie).
So the result has exactly target_depth layers and the same run sequence, and each run is within one layer
of its exact length whenever every exact length is at least one (always true when growing).

Small targets: stretch refuses a target smaller than the number of runs (ValueError): it cannot keep every
run. Stack, whose remainder r may be smaller than the number of runs, then fills it with the first r layers
of the layout, as if the next copy were cut short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aira_jax.layout import Layout, as_layout

METHODS = ("stretch", "stack")
"""The extrapolation methods `extrapolate` accepts."""


def _check_target(target_depth: int) -> None:
  if isinstance(target_depth, bool) or not isinstance(target_depth, int) or target_depth < 1:
    raise ValueError(f"target_depth must be a positive integer number of layers, got {target_depth!r}")


def _apportion(lengths: Sequence[int], target: int) -> list[int]:
  """Scales run lengths to sum to `target` by largest remainder, each at least 1 (see module docstring).

  Exact length j is lengths[j] * target / depth; comparisons use numerators over depth, so no float error.
  """
  depth = sum(lengths)
  scaled = [length * target for length in lengths]  # exact lengths times depth
  counts = [numerator // depth for numerator in scaled]
  leftover = target - sum(counts)
  by_remainder = sorted(range(len(lengths)), key=lambda j: (-(scaled[j] % depth), j))
  for j in by_remainder[:leftover]:
    counts[j] += 1
  for j in range(len(counts)):
    if counts[j] == 0:
      donors = [i for i in range(len(counts)) if counts[i] >= 2]
      donor = max(donors, key=lambda i: (counts[i] * depth - scaled[i], -i))
      counts[donor] -= 1
      counts[j] = 1
  return counts


def stretch(layout: Layout | str, target_depth: int) -> Layout:
  """Scales every run of `layout` by target_depth / depth, keeping order and ratio.

  The result has exactly target_depth layers and the same runs in the same order; rounding is by largest
  remainder (module docstring). Stretching to the layout's own depth returns it unchanged.
  Example: "2A+5M+2A+3M+1A+3M" (16 layers) stretched to 32 is "4A+10M+4A+6M+2A+6M".

  Raises:
    ValueError if target_depth < 1, or smaller than the number of runs (no run may vanish; use a target of
    at least that many layers, or `stack`, which cuts the layout short instead).
  """
  layout = as_layout(layout)
  _check_target(target_depth)
  runs = layout.runs()
  if target_depth < len(runs):
    raise ValueError(f"cannot stretch {layout.run_length()} ({len(runs)} runs) to {target_depth} layers: every "
                     f"run keeps at least one layer; use a target of at least {len(runs)}, or stack")
  counts = _apportion([length for _, length in runs], target_depth)
  return Layout.from_runs((symbol, count) for (symbol, _), count in zip(runs, counts))


def stack(layout: Layout | str, target_depth: int) -> Layout:
  """Repeats the whole layout floor(target_depth / depth) times, then appends the remaining r layers.

  The remainder r = target_depth % depth is `stretch(layout, r)` when r is at least the number of runs,
  else the first r layers of the layout. Example: "2A+4M" stacked to 32 is "2A+4M" five times, then "AM".

  Raises:
    ValueError if target_depth < 1.
  """
  layout = as_layout(layout)
  _check_target(target_depth)
  copies, remainder = divmod(target_depth, layout.depth)
  symbols = layout.symbols * copies
  if remainder >= len(layout.runs()):
    symbols += stretch(layout, remainder).symbols
  elif remainder:
    symbols += layout.symbols[:remainder]
  return Layout(symbols)


def extrapolate(layout: Layout | str, target_depth: int, method: Literal["stretch", "stack"]) -> Layout:
  """Grows (or shrinks) `layout` to target_depth layers with `method`, "stretch" or "stack".

  Raises:
    ValueError for an unknown method, target_depth < 1, or what the method itself refuses.
  """
  if method == "stretch":
    return stretch(layout, target_depth)
  if method == "stack":
    return stack(layout, target_depth)
  raise ValueError(f"unknown extrapolation method {method!r}; choose one of {', '.join(METHODS)}")
