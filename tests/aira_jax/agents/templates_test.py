"""Tests of the shared template machinery on a throwaway package: a template loads from `<package>/prompts/`,
fills, names every missing field, refuses unknown names and non-name placeholders."""

import pytest

from aira_jax.agents import templates

NAMES = ("greet", "odd")


@pytest.fixture(name="package")
def fixture_package(tmp_path, monkeypatch):
  """An importable package `templates_test_pkg` with prompts/greet.md and prompts/odd.md."""
  root = tmp_path / "templates_test_pkg"
  (root / "prompts").mkdir(parents=True)
  (root / "__init__.py").write_text("")
  (root / "prompts" / "greet.md").write_text("Hello {name}, {{literal}} braces; {name} again, then {place}.\n")
  (root / "prompts" / "odd.md").write_text("Index {items[0]}\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  return "templates_test_pkg"


def test_render_fills_every_field_and_keeps_doubled_braces(package):
  assert templates.template_fields("greet", package, NAMES) == ("name", "place")
  text = templates.render("greet", {"name": "Ada", "place": "here", "unused": 1}, package, NAMES)
  assert text == "Hello Ada, {literal} braces; Ada again, then here.\n"


def test_missing_fields_are_all_named(package):
  with pytest.raises(templates.MissingPlaceholderError) as caught:
    templates.render("greet", {}, package, NAMES)
  assert caught.value.missing == ("name", "place") and caught.value.template == "greet"
  assert str(caught.value) == "prompt template 'greet' needs value(s) for: name, place"
  assert isinstance(caught.value, KeyError)


def test_unknown_template_and_non_name_placeholder_are_refused(package):
  with pytest.raises(ValueError, match="unknown prompt template 'greets'; known: greet, odd"):
    templates.load_template("greets", package, NAMES)
  with pytest.raises(ValueError, match=r"placeholder \{items\[0\]\} must be a plain name"):
    templates.template_fields("odd", package, NAMES)


def test_a_listed_template_missing_from_the_package_says_where_to_look(package):
  with pytest.raises(FileNotFoundError, match="check \\[options.package_data\\] in setup.cfg"):
    templates.load_template("absent", package, ("absent",))
