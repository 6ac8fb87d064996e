"""Knobs: module-level constants of a seed file that the built-in design agent may vary without an LLM.

A knob is one line of the form

    WINDOW = 32  # knob: 8, 16, 32, 64

an upper-case name, a Python literal, and after "# knob:" the comma-separated literals it may take. Seed
mechanisms and the autoresearch baseline declare their knobs this way, so the offline agent can draft
(random knob values), improve (change one knob) and cross over (each knob from either parent) while the file
stays valid Python; an LLM agent may rewrite the file freely. A seed file names itself on a first line
`# seed: <name>` (`seed_name`), which its variations keep, so results can be grouped by seed.
"""

from __future__ import annotations

import ast
import dataclasses
import re

_KNOB = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>.+?)\s*#\s*knob:\s*(?P<options>.+?)\s*$",
                   re.MULTILINE)
_SEED_LINE = re.compile(r"^# seed: (?P<name>\S+)", re.MULTILINE)


def seed_name(source: str) -> str | None:
  """The seed a file came from (its `# seed: <name>` line), or None."""
  match = _SEED_LINE.search(source)
  return match.group("name") if match else None


@dataclasses.dataclass(frozen=True)
class Knob:
  """A knob's name, its current value and the values it may take (all as Python literal text)."""

  name: str
  value: str
  options: tuple[str, ...]


def _split_options(text: str) -> tuple[str, ...]:
  """Comma-separated literals (commas inside quotes or brackets do not split)."""
  try:
    values = ast.literal_eval(f"[{text}]")
  except (ValueError, SyntaxError):
    raise ValueError(f"knob options {text!r} are not comma-separated Python literals") from None
  return tuple(repr(v) for v in values)


def parse_knobs(source: str) -> dict[str, Knob]:
  """The knobs declared in `source`, by name, in order of appearance; ValueError for a malformed one."""
  knobs = {}
  for match in _KNOB.finditer(source):
    value = repr(ast.literal_eval(match.group("value")))
    options = _split_options(match.group("options"))
    if value not in options:
      options = (value, *options)
    knobs[match.group("name")] = Knob(match.group("name"), value, options)
  return knobs


def set_knobs(source: str, values: dict[str, str]) -> str:
  """`source` with the named knobs set to the given literal texts; ValueError for an unknown knob or a value
  outside its options."""
  knobs = parse_knobs(source)
  unknown = sorted(set(values) - set(knobs))
  if unknown:
    raise ValueError(f"unknown knob(s) {', '.join(unknown)}; this file has {', '.join(knobs) or 'none'}")
  for name, value in values.items():
    if value not in knobs[name].options:
      raise ValueError(f"knob {name} cannot be {value}; allowed: {', '.join(knobs[name].options)}")

  def replace(match: re.Match) -> str:
    name = match.group("name")
    if name not in values:
      return match.group(0)
    return f"{name} = {values[name]}  # knob: {match.group('options')}"

  return _KNOB.sub(replace, source)


def describe(knobs: dict[str, str]) -> str:
  """"WINDOW=32, HEADS=4" for plans."""
  return ", ".join(f"{name}={value}" for name, value in knobs.items())
