"""Prompt templates kept as Markdown files in a package's `prompts/` folder, filled with `str.format` fields.

Shared by the operators of both pipelines; each names its own templates: compose's layout prompts are
`aira_jax/compose/prompts/*.md` (aira_jax.compose.prompts), design's code prompts `aira_jax/design/prompts/*.md`.
The files ship as package data (setup.cfg). Templates use `str.format` fields (`{task}`, `{memory}`, ...;
literal braces are doubled). `render` fills them from one dict and names every missing field, so a prompt never
goes out with a hole in it.
"""

from __future__ import annotations

import functools
import importlib.resources
import string
from collections.abc import Iterable, Mapping
from typing import Any

TEMPLATE_DIR = "prompts"
"""The folder of a package that holds its templates, each `<name>.md`."""


class MissingPlaceholderError(KeyError):
  """`render` was not given a value for every field of a template; `missing` lists them."""

  def __init__(self, template: str, missing: Iterable[str]):
    self.template = template
    self.missing = tuple(missing)
    super().__init__(f"prompt template {template!r} needs value(s) for: {', '.join(self.missing)}")

  def __str__(self) -> str:
    return self.args[0]


def template_path(name: str, package: str, names: tuple[str, ...]):
  """The template file `package/prompts/<name>.md` (`name` one of `names`) as an `importlib.resources`
  Traversable (works from an installed wheel too)."""
  if name not in names:
    raise ValueError(f"unknown prompt template {name!r}; known: {', '.join(names)}")
  return importlib.resources.files(package).joinpath(TEMPLATE_DIR, f"{name}.md")


@functools.cache
def load_template(name: str, package: str, names: tuple[str, ...]) -> str:
  """The raw text of template `name` (one of `names`), read once and cached."""
  path = template_path(name, package, names)
  try:
    return path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise FileNotFoundError(f"prompt template {name!r} is missing from the installed package at {path}; "
                            "check [options.package_data] in setup.cfg") from None


def template_fields(name: str, package: str, names: tuple[str, ...]) -> tuple[str, ...]:
  """The placeholder names a template uses, in first-use order."""
  fields = []
  for _, field, _, _ in string.Formatter().parse(load_template(name, package, names)):
    if field is not None:
      if not field.isidentifier():
        raise ValueError(f"prompt template {name!r}: placeholder {{{field}}} must be a plain name")
      fields.append(field)
  return tuple(dict.fromkeys(fields))


def render(name: str, values: Mapping[str, Any], package: str, names: tuple[str, ...]) -> str:
  """Fills template `name` with `values` (extra keys are ignored, so one context dict serves every template).

  Raises:
    MissingPlaceholderError naming every field of the template that `values` lacks.
  """
  missing = [f for f in template_fields(name, package, names) if f not in values]
  if missing:
    raise MissingPlaceholderError(name, missing)
  return load_template(name, package, names).format_map(values)
