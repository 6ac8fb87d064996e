"""Tests for aira_jax.compose.extrapolate: Composer's examples, largest-remainder rounding, small targets,
and properties of stretch and stack over random layouts."""

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.compose.extrapolate import METHODS, extrapolate, stack, stretch
from aira_jax.layout import Layout

layouts_strategy = st.lists(st.sampled_from("AMS"), min_size=1, max_size=40).map(lambda s: Layout(tuple(s)))


def test_composer_16_layer_pattern_stretched_to_32_doubles_every_run():
  assert stretch("2A+5M+2A+3M+1A+3M", 32) == Layout.parse("4A+10M+4A+6M+2A+6M")


def test_composer_6_layer_pattern_stacked_to_32():
  result = stack("2A+4M", 32)
  assert result.text == "AAMMMM" * 5 + "AM"
  assert result.depth == 32


def test_stretch_to_same_depth_is_identity():
  layout = Layout.parse("2A+5M+2A+3M+1A+3M")
  assert stretch(layout, layout.depth) == layout


def test_largest_remainder_gives_leftover_to_largest_fraction():
  # 1A+2M+3S to 4 layers: exact 0.67, 1.33, 2.0 -> floors 0, 1, 2, the leftover layer to A (fraction 0.67).
  assert stretch("1A+2M+3S", 4) == Layout.parse("1A+1M+2S")
  # 2A+4M to 4 layers: exact 1.33, 2.67 -> the leftover goes to M.
  assert stretch("2A+4M", 4) == Layout.parse("1A+3M")


def test_largest_remainder_tie_goes_to_earlier_run():
  assert stretch("1A+1M", 3) == Layout.parse("2A+1M")
  assert stretch("1M+1A+1S", 5) == Layout.parse("2M+2A+1S")


def test_run_rounded_to_zero_takes_a_layer_from_the_run_furthest_above_its_share():
  # 1A+1M+1A+5M to 4: exact 0.5 each for the first three, 2.5 for the last; floors 0,0,0,2; the two leftover
  # layers go to the first two runs (tie -> earlier); the third run takes one from the last.
  assert stretch("1A+1M+1A+5M", 4) == Layout.parse("AMAM")
  # 6A+1M+1A to 3: exact 2.25, 0.375, 0.375 -> 2,1,0 by remainder; the last A run takes one from the first.
  assert stretch("6A+1M+1A", 3) == Layout.parse("AMA")
  # 4A+3M+1S to 4: exact 2.0, 1.5, 0.5 -> 2, 2, 0 (the tie for the leftover goes to M); S takes its layer from
  # M, which is 0.5 above its exact length, not from A, which holds as many layers but sits exactly on its own.
  assert stretch("4A+3M+1S", 4) == Layout.parse("2A+1M+1S")


def test_stretch_refuses_target_smaller_than_number_of_runs():
  with pytest.raises(ValueError, match=r"4 runs.*at least 4, or stack"):
    stretch("AMAM", 3)


def test_stack_remainder_smaller_than_number_of_runs_takes_first_layers():
  # 3 runs, 1 copy, remainder 2 -> the first two layers "AM".
  assert stack("AMA", 5).text == "AMA" + "AM"
  assert stack("AMSA", 2).text == "AM"


def test_stack_remainder_is_stretched_when_it_fits_the_runs():
  assert stack("2A+4M", 10).text == "AAMMMM" + "AMMM"
  assert stack("2A+4M", 12).text == "AAMMMM" * 2


def test_extrapolate_dispatches_and_validates():
  assert METHODS == ("stretch", "stack")
  assert extrapolate("2A+4M", 32, "stack") == stack("2A+4M", 32)
  assert extrapolate("2A+4M", 12, "stretch").text == "AAAAMMMMMMMM"
  with pytest.raises(ValueError, match="unknown extrapolation method 'grow'"):
    extrapolate("2A+4M", 12, "grow")
  for method in METHODS:
    for bad in (0, -3, 2.5, True):
      with pytest.raises(ValueError, match="target_depth must be a positive integer"):
        extrapolate("2A+4M", bad, method)


@settings(max_examples=300, deadline=None)
@given(layouts_strategy, st.data())
def test_stretch_keeps_depth_runs_and_ratio(layout, data):
  runs = layout.runs()
  target = data.draw(st.integers(min_value=len(runs), max_value=200))
  result = stretch(layout, target)
  assert result.depth == target
  assert [s for s, _ in result.runs()] == [s for s, _ in runs]
  exact = [Fraction(length * target, layout.depth) for _, length in runs]
  got = [length for _, length in result.runs()]
  assert all(n >= 1 for n in got)
  # No run gets more than its exact length rounded up; a run whose exact length is under one gets one layer.
  assert all(n <= math.ceil(x) for n, x in zip(got, exact))
  assert all(n == 1 for n, x in zip(got, exact) if x < 1)
  if min(exact) >= 1:
    assert all(abs(n - x) < 1 for n, x in zip(got, exact))


@settings(max_examples=200, deadline=None)
@given(layouts_strategy, st.integers(min_value=1, max_value=200))
def test_stack_repeats_whole_copies_then_a_remainder(layout, target):
  result = stack(layout, target)
  copies, remainder = divmod(target, layout.depth)
  assert result.depth == target
  assert result.symbols[:copies * layout.depth] == layout.symbols * copies
  tail = result[copies * layout.depth:] if remainder else None
  if remainder >= len(layout.runs()):
    assert tail == stretch(layout, remainder)
  elif remainder:
    assert tail == layout[:remainder]
