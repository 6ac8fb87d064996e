"""Markdown tables for reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def markdown_table(rows: Sequence[Mapping]) -> str:
  """A markdown table of `rows` (dicts with the same keys); floats in 4 significant digits."""
  if not rows:
    return ""
  keys = list(rows[0])
  cell = lambda value: f"{value:.4g}" if isinstance(value, float) else str(value)  # noqa: E731
  lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
  lines += ["| " + " | ".join(cell(row[key]) for key in keys) + " |" for row in rows]
  return "\n".join(lines)
