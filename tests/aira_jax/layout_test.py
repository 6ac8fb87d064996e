"""Tests for aira_jax.layout: parsing both text forms, canonical text, runs, counts, and every error case."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax import primitives
from aira_jax.layout import Layout, as_layout

symbols_strategy = st.lists(st.sampled_from("AMS"), min_size=1, max_size=40).map(tuple)


@settings(max_examples=200, deadline=None)
@given(symbols_strategy)
def test_per_layer_and_run_length_text_round_trip(symbols):
  layout = Layout(symbols)
  assert Layout.parse(str(layout)) == layout
  assert Layout.parse(layout.run_length()) == layout
  assert Layout.from_runs(layout.runs()) == layout
  assert hash(Layout.parse(layout.run_length())) == hash(layout)
  assert sum(n for _, n in layout.runs()) == layout.depth == len(symbols)
  # Runs are maximal: neighbours differ.
  run_symbols = [s for s, _ in layout.runs()]
  assert all(a != b for a, b in zip(run_symbols, run_symbols[1:]))


@settings(max_examples=100, deadline=None)
@given(symbols_strategy, st.data())
def test_whitespace_is_ignored_anywhere(symbols, data):
  text = Layout(symbols).run_length()
  spaced = "".join(c + data.draw(st.sampled_from(["", " ", "\t", "\n "])) for c in text)
  assert Layout.parse("  " + spaced) == Layout(symbols)


def test_composer_pattern():
  layout = Layout.parse("2A+5M+2A+3M+1A+3M")
  assert str(layout) == "AAMMMMMAAMMMAMMM"
  assert layout.runs() == (("A", 2), ("M", 5), ("A", 2), ("M", 3), ("A", 1), ("M", 3))
  assert layout.counts() == {"A": 5, "M": 11, "S": 0}
  assert layout.ratios()["A"] == pytest.approx(5 / 16)
  assert layout.ratio_text() == "5A:11M"
  assert layout.space() == frozenset("AM")


def test_group_terms_repeat_the_group():
  assert str(Layout.parse("3AM")) == "AMAMAM"
  assert str(Layout.parse("2AMS + M")) == "AMSAMSM"


def test_equality_slicing_and_as_layout():
  layout = Layout.parse("AMSM")
  assert layout == as_layout("1A+1M+1S+1M") and layout != Layout.parse("AMSS")
  assert layout[1:3] == Layout.parse("MS") and layout[0] == "A"
  assert {layout: 1}[Layout.parse("AMSM")] == 1
  assert repr(layout) == "Layout('1A+1M+1S+1M')"


@pytest.mark.parametrize("text, space, fragment", [
    ("", None, "empty layout"),
    ("   ", None, "empty layout"),
    ("AMX", None, "position 2: unknown primitive 'X'"),
    ("am", None, "position 0: unknown primitive 'a' (did you mean 'A'?)"),
    ("A M S", "AM", "position 4: primitive 'S' is outside the search space AM"),
    ("2A+3S", "{A,M}", "position 4: primitive 'S' is outside"),
    ("2A++M", None, "position 3: empty term"),
    ("2A+", None, "empty term"),
    ("0A", None, "count must be at least 1"),
    ("A2", None, "position 1: a count goes before the symbols"),
    ("A-M", None, "position 1: unexpected character '-'"),
    ("5+A", None, "term '5' has no primitive symbol"),
    ("2000A", None, "deeper than the limit of 1024"),
])
def test_invalid_text_names_position_and_allowed(text, space, fragment):
  with pytest.raises(ValueError) as info:
    Layout.parse(text, space=space)
  assert fragment in str(info.value)


def test_depth_limit_is_configurable():
  with pytest.raises(ValueError, match="deeper than the limit of 16"):
    Layout.parse("8A+9M", max_depth=16)
  assert Layout.parse("8A+8M", max_depth=16).depth == 16


def test_check_space_and_bad_space():
  Layout.parse("AMAM").check_space("AM")
  with pytest.raises(ValueError, match="layer 2: primitive 'S'"):
    Layout.parse("AMSM").check_space("AM")
  with pytest.raises(ValueError, match="unknown primitive 'Q'"):
    Layout.parse("AM", space="AQ")
  with pytest.raises(ValueError, match="empty search space"):
    Layout.parse("AM", space="")


def test_constructor_validates_symbols():
  with pytest.raises(ValueError, match="at least one layer"):
    Layout(())
  with pytest.raises(ValueError, match="layer 1: unknown primitive 'Z'"):
    Layout(("A", "Z"))


def test_registry_adds_a_primitive_in_one_place(monkeypatch):
  monkeypatch.setattr(primitives, "_REGISTRY", dict(primitives._REGISTRY))
  primitives.register_primitive("R", "retention", "test primitive", "aira_jax.layers.mlp:MLPLayer",
                                param_count="aira_jax.layers.mlp:mlp_param_count",
                                flops="aira_jax.layers.mlp:mlp_flops_per_token")
  assert "R" in primitives.alphabet()
  assert Layout.parse("2R+A").counts()["R"] == 2
  with pytest.raises(ValueError, match="already registered"):
    primitives.register_primitive("R", "again", "", "x:y", param_count="x:y", flops="x:y")
  with pytest.raises(ValueError, match="one upper-case letter"):
    primitives.register_primitive("rr", "bad", "", "x:y", param_count="x:y", flops="x:y")
