"""Prompt templates of the COMPOSE operators, kept as Markdown files next to this module, and their reply schemas.

The text lives in `aira_jax/agents/prompts/*.md` (shipped as package data, see setup.cfg) so it can be read and
edited without touching code. Templates use `str.format` fields (`{task}`, `{space}`, `{depth}`, `{memory}`,
...; literal braces are doubled). `render` fills them from one dict and names every missing field, so a prompt
never goes out with a hole in it. Operators ask for JSON matching `LAYOUT_REPLY_SCHEMA` (draft, improve,
debug, crossover) or `ANALYZE_REPLY_SCHEMA` (analyze).
"""

from __future__ import annotations

import functools
import importlib.resources
import string
from collections.abc import Iterable, Mapping
from typing import Any

from aira_jax import primitives

TEMPLATE_PACKAGE = "aira_jax.agents"
TEMPLATE_DIR = "prompts"
TEMPLATE_NAMES = ("system", "draft", "improve", "debug", "crossover", "analyze")
"""Every template; each is `prompts/<name>.md`."""

LAYOUT_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plan": {"type": "string"},
        "layout": {"type": "string"},
    },
    "required": ["plan", "layout"],
    "additionalProperties": False,
}
"""Reply of draft / improve / debug / crossover: the idea and the layout text."""

ANALYZE_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "is_bug": {"type": "boolean"},
        "summary": {"type": "string"},
        "metric": {"type": ["number", "null"]},
    },
    "required": ["is_bug", "summary", "metric"],
    "additionalProperties": False,
}
"""Reply of analyze: did the run fail, what happened, the final metric (null when none)."""


class MissingPlaceholderError(KeyError):
  """`render` was not given a value for every field of a template; `missing` lists them."""

  def __init__(self, template: str, missing: Iterable[str]):
    self.template = template
    self.missing = tuple(missing)
    super().__init__(f"prompt template {template!r} needs value(s) for: {', '.join(self.missing)}")

  def __str__(self) -> str:
    return self.args[0]


def template_path(name: str, package: str = TEMPLATE_PACKAGE, names: tuple[str, ...] = TEMPLATE_NAMES):
  """The template file `package/prompts/<name>.md` as an `importlib.resources` Traversable (works from an
  installed wheel too). `package` and `names` default to the compose templates; design passes its own."""
  if name not in names:
    raise ValueError(f"unknown prompt template {name!r}; known: {', '.join(names)}")
  return importlib.resources.files(package).joinpath(TEMPLATE_DIR, f"{name}.md")


@functools.cache
def load_template(name: str, package: str = TEMPLATE_PACKAGE, names: tuple[str, ...] = TEMPLATE_NAMES) -> str:
  """The raw text of template `name` (one of `names`), read once and cached."""
  path = template_path(name, package, names)
  try:
    return path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise FileNotFoundError(f"prompt template {name!r} is missing from the installed package at {path}; "
                            "check [options.package_data] in setup.cfg") from None


def template_fields(name: str, package: str = TEMPLATE_PACKAGE,
                    names: tuple[str, ...] = TEMPLATE_NAMES) -> tuple[str, ...]:
  """The placeholder names a template uses, in first-use order."""
  fields = []
  for _, field, _, _ in string.Formatter().parse(load_template(name, package, names)):
    if field is not None:
      if not field.isidentifier():
        raise ValueError(f"prompt template {name!r}: placeholder {{{field}}} must be a plain name")
      fields.append(field)
  return tuple(dict.fromkeys(fields))


def render(name: str, values: Mapping[str, Any], package: str = TEMPLATE_PACKAGE,
           names: tuple[str, ...] = TEMPLATE_NAMES) -> str:
  """Fills template `name` with `values` (extra keys are ignored, so one context dict serves every template).

  Raises:
    MissingPlaceholderError naming every field of the template that `values` lacks.
  """
  missing = [f for f in template_fields(name, package, names) if f not in values]
  if missing:
    raise MissingPlaceholderError(name, missing)
  return load_template(name, package, names).format_map(values)


def describe_space(space: str | Iterable[str]) -> str:
  """One line per primitive of the space ("- A (attention): causal multi-head ..."), alphabet order."""
  allowed = primitives.normalize_space(space)
  lines = []
  for symbol in primitives.alphabet():
    if symbol in allowed:
      primitive = primitives.get_primitive(symbol)
      lines.append(f"- {symbol} ({primitive.name}): {primitive.description}")
  return "\n".join(lines)


def space_text(space: str | Iterable[str]) -> str:
  """The space as "{A, M, S}" for prompts."""
  allowed = primitives.normalize_space(space)
  return "{" + ", ".join(s for s in primitives.alphabet() if s in allowed) + "}"
