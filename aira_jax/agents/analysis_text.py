"""Pieces of an agent's analysis that do not depend on what is searched: the journal's overview and its recent steps.

Both pipelines' analyses (compose/analysis.py, design/analysis.py) open with `overview_lines`: how many steps,
scored and failed (by kind), the metric's direction, and what changed since the previous analysis; their LLM
operators show `recent_steps`, one line per step since then. What is grouped and compared (layouts, seeds and
knobs) stays with each pipeline.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from aira_jax.agents.journal import Journal, Node

MAX_RECENT = 12
"""Steps since the previous analysis an analyze prompt shows (the latest ones)."""


def fmt(value: float) -> str:
  """A score as analyses print it (4 significant digits)."""
  return f"{value:.4g}"


def steps_text(count: int) -> str:
  """"1 step", "3 steps"."""
  return f"{count} step" + ("" if count == 1 else "s")


def overview_lines(nodes: list[Node], *, lower_is_better: bool, distinct: int, unit: str,
                   failure_kind: Callable[[Node], str]) -> list[str]:
  """The analysis's first lines: steps (analyses aside), how many scored (`distinct` distinct `unit`), how many
  failed by `failure_kind`, the metric's direction; then, after a previous analysis, its steps since and the
  best score then and now."""
  best_of = min if lower_is_better else max
  steps = [n for n in nodes if not n.is_analysis]
  failed = [n for n in steps if n.is_buggy]
  kinds = collections.Counter(failure_kind(n) for n in failed)
  failures = f" ({', '.join(f'{k} x{v}' for k, v in kinds.most_common())})" if kinds else ""
  lines = [f"{steps_text(len(steps))}: {sum(n.is_good for n in steps)} scored ({distinct} distinct {unit}), "
           f"{len(failed)} failed{failures}. Metric: {'lower' if lower_is_better else 'higher'} is better."]
  previous = next((i for i in range(len(nodes) - 1, -1, -1) if nodes[i].is_analysis), None)
  if previous is not None:
    before = [n.metric for n in nodes[:previous] if n.is_good]
    after = [n for n in nodes[previous + 1:] if not n.is_analysis]
    now = [n.metric for n in steps if n.is_good]
    best_then = fmt(best_of(before)) if before else "none"
    best_now = fmt(best_of(now)) if now else "none"
    lines.append(f"Since the previous analysis: {steps_text(len(after))}, {sum(n.is_good for n in after)} scored; "
                 f"best then {best_then}, now {best_now}.")
  return lines


def recent_steps(journal: Journal, describe: Callable[[str], str], score: Callable[[Node], str],
                 limit: int = MAX_RECENT) -> str:
  """The steps since the previous analysis (the latest `limit`), oldest first, one line each: operator, id, the
  payload as `describe` puts it, `score(node)` and the plan."""
  recent: list[Node] = []
  for node in reversed(journal.nodes):
    if node.is_analysis:
      break
    recent.append(node)
  shown = recent[:limit][::-1]
  lines = [f"- {node.operator} {node.id}: {describe(node.payload)} -> {score(node)}"
           + (f"; plan: {node.plan}" if node.plan else "") for node in shown]
  if len(recent) > len(shown):
    lines.insert(0, f"({len(recent) - len(shown)} earlier steps since the previous analysis not shown)")
  return "\n".join(lines) or "(none)"
