"""Tests of the compose prompt templates: every one loads from the package and fills; missing fields are named;
the reply schemas accept good replies and reject bad ones."""

import configparser
import fnmatch
import importlib.resources
import pathlib

import pytest

import aira_jax
from aira_jax.agents.templates import MissingPlaceholderError
from aira_jax.compose import prompts
from aira_jax.layout import Layout
from aira_jax.llm.schema import schema_errors

ROOT = pathlib.Path(__file__).resolve().parents[3]


def full_context():
  """A value for every field any template uses."""
  fields = {f for name in prompts.TEMPLATE_NAMES for f in prompts.template_fields(name)}
  context = {f: f"<{f}>" for f in fields}
  context.update(task="MAD proxy: mean accuracy", space=prompts.space_text("AM"), depth=16,
                 primitives=prompts.describe_space("AM"), memory="(nothing yet)")
  return context


@pytest.mark.parametrize("name", prompts.TEMPLATE_NAMES)
def test_every_template_loads_and_fills(name):
  fields = prompts.template_fields(name)
  assert {"task", "space", "depth"} <= set(fields)
  if name != "system":
    assert "memory" in fields
  if name in ("draft", "improve", "crossover", "analyze"):
    assert "analysis" in fields  # the latest analysis (for analyze: the previous one)
  markers = {f: f"@@{f}@@" for f in fields}
  text = prompts.render(name, markers)
  for field in fields:
    assert markers[field] in text
    assert "{" + field + "}" not in text
  assert "{{" not in text and "}}" not in text


@pytest.mark.parametrize("name", ["draft", "improve", "debug", "crossover"])
def test_layout_templates_ask_for_plan_and_layout_json(name):
  text = prompts.render(name, full_context())
  assert '{"plan": ' in text and '"layout": ' in text


def test_analyze_asks_for_an_analysis_and_next_directions_from_the_statistics():
  text = prompts.render("analyze", full_context())
  assert '{"analysis": ' in text and '"next_directions": ' in text and '"layout"' not in text
  assert "<statistics>" in text and "<recent>" in text and "<metric_name>" in text


def test_system_describes_the_space():
  text = prompts.render("system", full_context())
  assert "A (attention)" in text and "M (mlp)" in text and "S (mamba2)" not in text


def test_missing_placeholder_error_names_each_missing_field():
  context = full_context()
  del context["parent_layout"], context["memory"]
  with pytest.raises(MissingPlaceholderError) as caught:
    prompts.render("improve", context)
  assert caught.value.missing == ("parent_layout", "memory")
  assert "parent_layout" in str(caught.value) and "memory" in str(caught.value)
  assert isinstance(caught.value, KeyError)


def test_unknown_template_is_refused():
  with pytest.raises(ValueError, match="unknown prompt template 'drafts'"):
    prompts.load_template("drafts")


def test_templates_are_found_through_the_package_path():
  package_dir = pathlib.Path(aira_jax.__file__).parent
  resource_root = importlib.resources.files("aira_jax.compose") / "prompts"
  for name in prompts.TEMPLATE_NAMES:
    resource = prompts.template_path(name)
    assert resource.is_file()
    assert str(resource) == str(resource_root / f"{name}.md")
    assert pathlib.Path(str(resource)).resolve().parent == (package_dir / "compose" / "prompts").resolve()


def test_setup_cfg_ships_every_template_as_package_data():
  config = configparser.ConfigParser()
  config.read(ROOT / "setup.cfg")
  patterns = config["options.package_data"]["aira_jax"].split()
  package_dir = pathlib.Path(aira_jax.__file__).parent
  data_files = [*package_dir.glob("compose/prompts/*.md"), *package_dir.glob("design/prompts/*.md"),
                *package_dir.glob("design/templates/*.py"), *package_dir.glob("design/mechanism_sources/*.py")]
  assert len(data_files) >= len(prompts.TEMPLATE_NAMES) + 5 + 1 + 5
  for path in data_files:  # every non-module file the package reads at run time
    relative = path.relative_to(package_dir).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_reply_schemas_accept_good_and_reject_bad_replies():
  good = {"plan": "more attention at the top", "layout": "2A+5M+2A+3M+1A+3M"}
  assert schema_errors(good, prompts.LAYOUT_REPLY_SCHEMA) == []
  assert Layout.parse(good["layout"]).depth == 16
  assert schema_errors({"plan": "p"}, prompts.LAYOUT_REPLY_SCHEMA)
  assert schema_errors({**good, "extra": 1}, prompts.LAYOUT_REPLY_SCHEMA)
  analysis = {"analysis": "layouts with 25-50% attention scored best (mean 0.66 over 4)",
              "next_directions": "try two attention runs in the middle"}
  assert schema_errors(analysis, prompts.ANALYZE_REPLY_SCHEMA) == []
  assert schema_errors({"analysis": "only this"}, prompts.ANALYZE_REPLY_SCHEMA)
  assert schema_errors({**analysis, "metric": 0.7}, prompts.ANALYZE_REPLY_SCHEMA)
  assert schema_errors({**analysis, "analysis": 3}, prompts.ANALYZE_REPLY_SCHEMA)
  assert schema_errors(good, prompts.ANALYZE_REPLY_SCHEMA)  # a layout reply is not an analysis
