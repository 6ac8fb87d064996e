"""Knobs in seed files, and the built-in design agent that varies them."""

import random

import pytest

from aira_jax.agents import Action, Journal
from aira_jax.agents.journal import Node
from aira_jax.design.heuristic import SeedVariationOperator, seed_name
from aira_jax.design.knobs import parse_knobs, set_knobs

SEED_A = '''# seed: alpha
"""A seed file."""
WINDOW = 32  # knob: 8, 16, 32, 64
FEATURE = "elu"  # knob: "elu", "relu"
FIXED = 3
'''
SEED_B = '''# seed: beta
STATE = 16  # knob: 8, 16
'''


def test_parse_knobs_reads_values_and_options():
  knobs = parse_knobs(SEED_A)
  assert list(knobs) == ["WINDOW", "FEATURE"]
  assert knobs["WINDOW"].value == "32" and knobs["WINDOW"].options == ("8", "16", "32", "64")
  assert knobs["FEATURE"].options == ("'elu'", "'relu'")


def test_set_knobs_rewrites_only_the_named_lines():
  changed = set_knobs(SEED_A, {"WINDOW": "8", "FEATURE": "'relu'"})
  assert "WINDOW = 8  # knob: 8, 16, 32, 64" in changed and "FEATURE = 'relu'" in changed
  assert "FIXED = 3" in changed and parse_knobs(changed)["WINDOW"].value == "8"
  compile(changed, "changed.py", "exec")
  with pytest.raises(ValueError, match="cannot be 5"):
    set_knobs(SEED_A, {"WINDOW": "5"})
  with pytest.raises(ValueError, match="unknown knob"):
    set_knobs(SEED_A, {"DEPTH": "2"})


def _node(node_id, payload, metric=None, parents=(), operator="draft", buggy=False):
  return Node(id=node_id, operator=operator, parent_ids=parents, payload=payload, metric=metric, is_buggy=buggy,
              error="boom" if buggy else None)


def test_operator_drafts_improves_crosses_and_debugs():
  operator = SeedVariationOperator({"alpha": SEED_A, "beta": SEED_B})
  rng = random.Random(0)
  drafts = [operator.propose(Action("draft"), Journal(), rng) for _ in range(20)]
  assert {seed_name(d.payload) for d in drafts} == {"alpha", "beta"}
  journal = Journal()
  journal.append(_node("a1", SEED_A, 0.5))
  improved = operator.propose(Action("improve", ("a1",)), journal, rng)
  before, after = parse_knobs(SEED_A), parse_knobs(improved.payload)
  assert sum(before[k].value != after[k].value for k in before) == 1  # exactly one knob changed
  journal.append(_node("a2", set_knobs(SEED_A, {"WINDOW": "8", "FEATURE": "'relu'"}), 0.6))
  child = operator.propose(Action("crossover", ("a1", "a2")), journal, rng)
  for name, knob in parse_knobs(child.payload).items():
    assert knob.value in (before[name].value, parse_knobs(journal.get("a2").payload)[name].value)
  journal.append(_node("bad", SEED_A.replace("WINDOW", "WIN DOW"), parents=("a1",), operator="improve", buggy=True))
  fixed = operator.propose(Action("debug", ("bad",)), journal, rng)
  assert "scored ancestor a1" in fixed.plan and seed_name(fixed.payload) == "alpha"


def test_drafts_avoid_files_the_journal_holds():
  operator = SeedVariationOperator({"beta": SEED_B})  # two possible files: STATE = 8 or 16
  for seed in range(20):  # without the avoidance about half of these would repeat the first draft
    journal, rng = Journal(), random.Random(seed)
    first = operator.propose(Action("draft"), journal, rng)
    journal.append(_node("n1", first.payload, 0.1))
    assert operator.propose(Action("draft"), journal, rng).payload != first.payload


def test_an_exhausted_parent_falls_back_to_a_new_draft():
  operator = SeedVariationOperator({"alpha": SEED_A, "beta": SEED_B})
  journal = Journal()
  journal.append(_node("b8", set_knobs(SEED_B, {"STATE": "8"}), 0.5))
  journal.append(_node("b16", set_knobs(SEED_B, {"STATE": "16"}), 0.4))  # beta's only other variation
  proposal = operator.propose(Action("improve", ("b8",)), journal, random.Random(0))
  assert seed_name(proposal.payload) == "alpha" and "fresh draft" in proposal.plan
