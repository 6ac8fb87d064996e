"""The seed mechanism library: every file parses, names itself as a seed, declares its knobs, and knob and
hyper-parameter substitution round-trips and validates. (The sources run through the harness in lra_test.py.)"""

import ast

import pytest

from aira_jax.design.heuristic import seed_name
from aira_jax.design.mechanisms import MECHANISMS, mechanism_source, read_knobs, seed_sources


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_source_parses_names_itself_and_declares_knobs(name):
  mechanism = MECHANISMS[name]
  source = mechanism_source(name)
  tree = ast.parse(source)
  assert ast.get_docstring(tree) and seed_name(source) == name
  knobs = read_knobs(source)
  assert knobs and set(knobs) == set(mechanism.knobs)
  for knob, value in knobs.items():
    assert value in mechanism.knobs[knob] and len(mechanism.knobs[knob]) > 1
  defined = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
  assert ("Mixer" in defined) == (mechanism.mode == "mixer")
  assert "HYPERPARAMETERS = {}" in source
  assert seed_sources()[name] == source


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_every_allowed_value_substitutes(name):
  for knob, allowed in MECHANISMS[name].knobs.items():
    for value in allowed:
      source = mechanism_source(name, {knob: value})
      ast.parse(source)
      assert read_knobs(source)[knob] == value


def test_substitution_changes_only_the_knob_line():
  source = mechanism_source("local", {"WINDOW": 8})
  assert "WINDOW = 8  # knob: 4, 8, 16, 32, 64, 128" in source
  assert source.replace("WINDOW = 8 ", "WINDOW = 32 ") == mechanism_source("local")


def test_hyperparameters_substitute_and_validate():
  source = mechanism_source("softmax", hyperparameters={"num_layers": 3, "lr": 0.001})
  assert "HYPERPARAMETERS = {'num_layers': 3, 'lr': 0.001}" in source
  with pytest.raises(ValueError, match=r"num_layers=30 is out of range"):
    mechanism_source("softmax", hyperparameters={"num_layers": 30})
  with pytest.raises(ValueError, match="unknown key 'depth'"):
    mechanism_source("softmax", hyperparameters={"depth": 3})
  with pytest.raises(ValueError, match="must divide"):
    mechanism_source("softmax", hyperparameters={"d_model": 30, "num_heads": 4})


@pytest.mark.parametrize("name, knobs, message", [
    ("nope", None, "unknown mechanism"),
    ("local", {"STATE_DIM": 8}, "unknown knob"),
    ("local", {"WINDOW": 7}, "cannot be 7"),
    ("softmax", {"QK_NORM": 1}, "cannot be 1"),
])
def test_bad_requests_name_the_choices(name, knobs, message):
  with pytest.raises(ValueError, match=message):
    mechanism_source(name, knobs)
