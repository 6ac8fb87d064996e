"""`Node`: the unit of record of a search, one proposal with its result (aira-dojo's journal node).

Every draft, improvement, fix, merge and review an agent makes is one node: what it planned, what it produced
(a layout text or code), how it scored or why it failed, how long it took and how many tokens it used. Nodes
are immutable values that serialise to one line of JSON, so a journal of them is append-only JSONL.

An "analyze" node is the one kind that is not a candidate: an agent's written review of its results so far
(payload = the analysis, plan = the directions it draws), hung under the agent's latest step. It is never
evaluated and never has a metric; search policies, step budgets and reports' candidate counts leave it out
(`Node.is_analysis`, `Journal.candidates_only`), and prompts show the latest one (agents/memory.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from typing import Any

OPERATORS = ("draft", "improve", "debug", "crossover", "analyze")
"""What produced a node: aira-dojo's operators (draft, improve, debug, crossover) and analyze."""

PARENT_COUNTS = {"draft": 0, "improve": 1, "debug": 1, "crossover": 2, "analyze": 1}
"""How many parents each operator takes."""

MAX_EXCERPT_CHARS = 4000
"""Longest `output_excerpt` kept; longer terminal output keeps its head and tail."""


def new_node_id() -> str:
  """A fresh unique node id (12 hex characters of a random UUID)."""
  return uuid.uuid4().hex[:12]


def trim_excerpt(text: str, limit: int = MAX_EXCERPT_CHARS) -> str:
  """Returns `text` if it fits in `limit` characters, else its head and tail around a marker saying so.

  The tail is kept because a traceback's last lines say what went wrong; the head says what ran.
  The result is never longer than `limit` (for limit >= 64).
  """
  if len(text) <= limit:
    return text
  marker = f"\n... [{len(text)} chars, trimmed to {limit}] ...\n"
  keep = max(limit - len(marker), 0)
  head = keep // 3
  tail = keep - head
  return text[:head] + marker + (text[-tail:] if tail else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Node:
  """One step of a search.

  Attributes:
    id: unique within a journal.
    operator: one of `OPERATORS`.
    parent_ids: () for drafts, one id for improve / debug / analyze, two for crossover (first = primary).
    plan: the agent's stated intent (for an analysis: the directions it draws).
    payload: what was evaluated: a layout text ("2A+5M") or source code (for an analysis: its text).
    metric: the score, finite, or None when unscored (buggy, not evaluated yet, or an analysis).
    is_buggy: the payload failed (bad reply, invalid layout, crash, out of memory, ...).
    error: short description of the failure, None when not buggy.
    output_excerpt: terminal output, trimmed to `MAX_EXCERPT_CHARS` on construction.
    timings: seconds per phase, e.g. {"llm": 3.2, "train": 41.0}.
    tokens: LLM tokens used to make this node.
    agent_id: which agent made it.
    created_at: wall-clock seconds since the epoch.
    lower_is_better: True for losses / bits per byte, False for accuracies.
  """

  id: str
  operator: str
  parent_ids: tuple[str, ...] = ()
  plan: str = ""
  payload: str = ""
  metric: float | None = None
  is_buggy: bool = False
  error: str | None = None
  output_excerpt: str = ""
  timings: dict[str, float] = dataclasses.field(default_factory=dict)
  tokens: int = 0
  agent_id: str = ""
  created_at: float = dataclasses.field(default_factory=time.time)
  lower_is_better: bool = False

  def __post_init__(self):
    if not isinstance(self.id, str) or not self.id:
      raise ValueError(f"node id must be a non-empty string, got {self.id!r}")
    if self.operator not in OPERATORS:
      raise ValueError(f"node {self.id}: unknown operator {self.operator!r}; allowed: {', '.join(OPERATORS)}")
    object.__setattr__(self, "parent_ids", tuple(self.parent_ids))
    expected = PARENT_COUNTS[self.operator]
    if len(self.parent_ids) != expected:
      raise ValueError(
          f"node {self.id}: operator {self.operator!r} takes {expected} parent(s), got {len(self.parent_ids)}")
    if self.id in self.parent_ids:
      raise ValueError(f"node {self.id}: a node cannot be its own parent")
    if self.metric is not None:
      metric = float(self.metric)
      if not math.isfinite(metric):
        raise ValueError(f"node {self.id}: metric must be finite or None, got {self.metric!r}; "
                         "record a diverged run as buggy with metric None")
      object.__setattr__(self, "metric", metric)
    if self.operator == "analyze" and self.metric is not None:
      raise ValueError(f"node {self.id}: an analysis is never evaluated, so it has no metric (got {self.metric!r})")
    object.__setattr__(self, "output_excerpt", trim_excerpt(self.output_excerpt))
    object.__setattr__(self, "timings", {str(k): float(v) for k, v in self.timings.items()})

  @property
  def is_analysis(self) -> bool:
    """Made by the analyze operator: a written review, not a candidate (see the module docstring)."""
    return self.operator == "analyze"

  @property
  def is_good(self) -> bool:
    """Not buggy and scored: a node that can be improved or ranked."""
    return not self.is_buggy and self.metric is not None

  def to_dict(self) -> dict[str, Any]:
    """A JSON-ready dict of every field (parent_ids as a list)."""
    record = dataclasses.asdict(self)
    record["parent_ids"] = list(self.parent_ids)
    return record

  @classmethod
  def from_dict(cls, record: dict[str, Any]) -> Node:
    """Inverse of `to_dict`; unknown keys raise ValueError naming them."""
    if not isinstance(record, dict):
      raise ValueError(f"a node record must be a JSON object, got {type(record).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(record) - known)
    if unknown:
      raise ValueError(f"unknown node field(s): {', '.join(unknown)}")
    missing = sorted({"id", "operator"} - set(record))
    if missing:
      raise ValueError(f"node record lacks required field(s): {', '.join(missing)}")
    return cls(**{**record, "parent_ids": tuple(record.get("parent_ids", ()))})

  def to_json(self) -> str:
    """One line of strict JSON (no NaN, no newlines)."""
    return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"), ensure_ascii=False)

  @classmethod
  def from_json(cls, text: str) -> Node:
    """Parses the output of `to_json`; raises ValueError on malformed text."""
    try:
      record = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"not valid JSON: {e}") from e
    return cls.from_dict(record)
