"""Prompt templates of the COMPOSE operators, kept as Markdown files next to this module, and their reply schemas.

The text lives in `aira_jax/compose/prompts/*.md` (shipped as package data, see setup.cfg) so it can be read and
edited without touching code; loading and filling is the shared `aira_jax.agents.templates` (fields such as
`{task}`, `{space}`, `{depth}`, `{memory}`, `{analysis}`; a missing one is named, never sent as a hole). Operators
ask for JSON matching `LAYOUT_REPLY_SCHEMA` (draft, improve, debug, crossover) or `ANALYZE_REPLY_SCHEMA` (analyze:
the agent's scheduled review of its results so far, which draft, improve and crossover prompts then show).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aira_jax import primitives
from aira_jax.agents import templates
from aira_jax.agents.replies import ANALYZE_REPLY_SCHEMA, strings_schema

__all__ = ["ANALYZE_REPLY_SCHEMA", "LAYOUT_REPLY_SCHEMA", "TEMPLATE_NAMES", "TEMPLATE_PACKAGE", "describe_space",
           "load_template", "render", "space_text", "template_fields", "template_path"]

TEMPLATE_PACKAGE = "aira_jax.compose"
TEMPLATE_NAMES = ("system", "draft", "improve", "debug", "crossover", "analyze")
"""Every template; each is `prompts/<name>.md`."""

LAYOUT_REPLY_SCHEMA: dict[str, Any] = strings_schema("plan", "layout")
"""Reply of draft / improve / debug / crossover: the idea and the layout text. The analyze reply,
`ANALYZE_REPLY_SCHEMA` ({"analysis", "next_directions"}), is shared with design (aira_jax.agents.replies); later
prompts quote it as {analysis}."""


def template_path(name: str):
  """The compose template `name` as an `importlib.resources` Traversable."""
  return templates.template_path(name, TEMPLATE_PACKAGE, TEMPLATE_NAMES)


def load_template(name: str) -> str:
  """The raw text of compose template `name`."""
  return templates.load_template(name, TEMPLATE_PACKAGE, TEMPLATE_NAMES)


def template_fields(name: str) -> tuple[str, ...]:
  """The placeholder names compose template `name` uses, in first-use order."""
  return templates.template_fields(name, TEMPLATE_PACKAGE, TEMPLATE_NAMES)


def render(name: str, values: Mapping[str, Any]) -> str:
  """Fills compose template `name` with `values`; raises `templates.MissingPlaceholderError` naming what lacks."""
  return templates.render(name, values, TEMPLATE_PACKAGE, TEMPLATE_NAMES)


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
