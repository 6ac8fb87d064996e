"""Tests for aira_jax.compose.families: the Llama, Composer and Nemotron-like baselines at a target depth, the
family table of the scale stage and the space its layouts use."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aira_jax.compose.families import (BASELINES, baseline_layout, llama_layout, nemotron_layout, scale_families,
                                       space_of)
from aira_jax.layout import Layout


def test_llama_alternates_attention_and_mlp():
  assert llama_layout(32) == Layout.parse("AM" * 16)
  assert llama_layout(7).text == "AMAMAMA"  # an odd depth ends with attention
  assert llama_layout(1).text == "A"
  assert baseline_layout("llama", 32) == llama_layout(32)


def test_composer_is_stretched():
  assert baseline_layout("composer", 32).run_length() == "4A+10M+4A+6M+2A+6M"
  assert baseline_layout("composer", 16).run_length() == "2A+5M+2A+3M+1A+3M"


def test_composer6_is_stacked():
  assert baseline_layout("composer6", 32).text == "AAMMMM" * 5 + "AM"
  assert baseline_layout("composer6", 12).text == "AAMMMM" * 2
  assert baseline_layout("composer6", 7).text == "AAMMMM" + "A"  # a remainder shorter than the runs: cut short


def test_nemotron_at_32_layers():
  layout = nemotron_layout(32)
  assert layout.depth == 32
  assert all(symbol == "M" for symbol in layout.symbols[1::2])
  mixers = layout.symbols[0::2]
  assert set(mixers) == {"A", "S"}
  attention = [i for i, symbol in enumerate(mixers) if symbol == "A"]
  assert len(attention) == round(16 * 4 / 28) == 2
  assert attention == [5, 10]  # the 16 mixer slots split in three near-equal parts, none at the bottom
  assert layout.text == "SM" * 5 + "AM" + "SM" * 4 + "AM" + "SM" * 5
  assert baseline_layout("nemotron", 32) == layout


@given(st.integers(min_value=1, max_value=300))
def test_nemotron_is_a_valid_alternating_hybrid_at_any_depth(depth):
  layout = nemotron_layout(depth)
  assert layout.depth == depth
  mixers, mlps = layout.symbols[0::2], layout.symbols[1::2]
  assert set(mlps) <= {"M"}
  assert set(mixers) <= {"A", "S"}
  attention = [i for i, symbol in enumerate(mixers) if symbol == "A"]
  assert len(attention) == max(1, round(len(mixers) * 4 / 28))
  if len(mixers) >= 2:
    assert 0 not in attention  # no attention in the first mixer slot
  # Evenly spread: the gaps between attention layers (and the ends) differ by at most one mixer slot
  # beyond the rounding of int((i + 1) * mixers / (attention + 1)).
  bounds = [-1] + attention + [len(mixers)]
  gaps = [b - a for a, b in zip(bounds, bounds[1:])]
  assert max(gaps[:-1]) - min(gaps[:-1]) <= 1
  assert abs(gaps[-1] - len(mixers) / (len(attention) + 1)) <= 2


@pytest.mark.parametrize("depth, text", [(1, "A"), (2, "AM"), (3, "SMA"), (4, "SMAM"), (5, "SMAMS")])
def test_nemotron_small_depths(depth, text):
  layout = nemotron_layout(depth)
  assert layout.text == text
  layout.check_space("AMS")


def test_every_baseline_has_the_target_depth():
  for name in BASELINES:
    for depth in (8, 16, 32, 56):
      assert baseline_layout(name, depth).depth == depth, (name, depth)


def test_unknown_baseline_lists_the_names():
  with pytest.raises(ValueError, match="unknown baseline 'mamba'; choose from llama, composer, composer6, nemotron"):
    baseline_layout("mamba", 32)


def test_scale_families_found_first_then_baselines():
  found = Layout.parse("2A+2M")
  families = scale_families(found, ["stretch", "stack"], ["llama", "composer", "nemotron"], 8)
  assert list(families) == ["found-stretch", "found-stack", "llama", "composer", "nemotron"]
  assert families["found-stretch"].text == "AAAAMMMM"
  assert families["found-stack"].text == "AAMMAAMM"
  assert families["llama"] == llama_layout(8)
  assert families["composer"] == baseline_layout("composer", 8)
  assert families["nemotron"] == nemotron_layout(8)
  assert all(layout.depth == 8 for layout in families.values())


def test_scale_families_accepts_text_and_one_method():
  families = scale_families("AM", ["stack"], ["composer6"], 6)
  assert families == {"found-stack": Layout.parse("AMAMAM"), "composer6": Layout.parse("2A+4M")}


def test_scale_families_without_a_found_layout_gives_only_baselines():
  families = scale_families(None, ["stretch", "stack"], ["llama", "composer6"], 32)
  assert list(families) == ["llama", "composer6"]


def test_scale_families_rejects_unknown_names():
  with pytest.raises(ValueError, match="unknown extrapolation method 'grow'"):
    scale_families(Layout.parse("AM"), ["grow"], [], 8)
  with pytest.raises(ValueError, match="unknown baseline 'gpt'"):
    scale_families(None, [], ["gpt"], 8)


def test_space_of():
  assert space_of({"llama": llama_layout(8), "composer": baseline_layout("composer", 16)}) == "AM"
  assert space_of({"nemotron": nemotron_layout(8), "llama": llama_layout(8)}) == "AMS"
  assert space_of({"mlp-only": Layout.parse("MMMM")}) == "M"
  assert space_of({"s": Layout.parse("SSM"), "a": Layout.parse("A")}) == "AMS"  # alphabet order, not first use
  assert space_of({}) == ""
