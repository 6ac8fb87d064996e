"""Statistics of a design journal as short text: what the built-in design agent writes when it analyses its results.

`analyze_candidates(journal)` reads the agent's steps (analyses aside) and states, with numbers computed from
them:
- how many steps were taken, scored (and how many distinct candidates that is) and failed, by stage: a
  candidate the sandbox rejected counts under the stage its error names ("stage train failed: ...", "killed
  (timeout) during stage compile"), as report.md counts failures by stage; a step that produced no candidate (an
  LLM reply without usable code) under its error's first word;
- what changed since the previous analysis: steps, and the best score then and now;
- the best candidates so far: score, seed (the file's `# seed: <name>` line) and knob values (knobs.py);
- count, best and mean score of the distinct scored candidates grouped by seed, and, within the seed of the
  best candidate, by each knob's value.
Its directions name the best candidate, the seed and knob values with the best mean, and the seeds and knob
values (of the best candidate's seed) that no step has tried yet, failed ones included. The design LLM
operator's analyze prompt includes the same text, so a model's analysis starts from the same numbers.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import statistics
from collections.abc import Iterable

from aira_jax.agents.analysis_text import fmt, overview_lines
from aira_jax.agents.journal import Journal, Node
from aira_jax.design.knobs import Knob, describe, parse_knobs, seed_name

BEST_SHOWN = 3
NO_SEED = "no seed line"
"""The group of scored files without a `# seed:` line (an LLM agent's own code)."""

_STAGE_ERROR = re.compile(r"^stage (?P<stage>\S+) ")
_DIED = re.compile(r"^(?P<how>killed|exited)\b.*? during stage (?P<stage>\S+)")


@dataclasses.dataclass(frozen=True)
class Analysis:
  """`text`: the statistics, a few lines; `directions`: one line on where to search next."""

  text: str
  directions: str


def failure_kind(node: Node) -> str:
  """What a failed node failed at: "stage train", "stage compile (killed)", or the first word of an error that
  names no stage ("ReplyParseError")."""
  error = node.error or "unknown"
  died = _DIED.match(error)
  if died:
    return f"stage {died.group('stage')} ({died.group('how')})"
  stage = _STAGE_ERROR.match(error)
  if stage:
    return f"stage {stage.group('stage')}"
  return error.split(":", 1)[0][:60]


def knobs_of(source: str) -> dict[str, Knob]:
  """The file's knobs; none when their declarations do not parse (code an LLM wrote)."""
  try:
    return parse_knobs(source)
  except ValueError:
    return {}


def describe_candidate(source: str) -> str:
  """"local WINDOW=16": the file's seed and knob values ("no seed line" for a file without one)."""
  if not source.strip():
    return "(no code)"
  knobs = describe({name: knob.value for name, knob in knobs_of(source).items()})
  return f"{seed_name(source) or NO_SEED}" + (f" {knobs}" if knobs else "")


def _direction(journal: Journal, lower_is_better: bool | None) -> bool:
  """The metric's direction: as given, else the scored nodes', else any step's (the ensemble records it on
  every node, failed ones included), else higher is better."""
  if lower_is_better is not None:
    return lower_is_better
  if journal.good_nodes():
    return journal.lower_is_better
  return next((n.lower_is_better for n in journal.nodes if not n.is_analysis), False)


def _scored(nodes: list[Node]) -> list[Node]:
  """The first scored node of each distinct file among `nodes`, in the order first scored."""
  seen, out = set(), []
  for node in nodes:
    if node.is_good and node.payload not in seen:
      seen.add(node.payload)
      out.append(node)
  return out


def _group_line(label: str, groups: dict[str, list[float]], best_of) -> str:
  return f"{label}: " + "; ".join(f"{name} n={len(values)} best {fmt(best_of(values))} mean "
                                  f"{fmt(statistics.fmean(values))}" for name, values in groups.items()) + "."


def analyze_candidates(journal: Journal, *, seeds: Iterable[str] = (),
                       lower_is_better: bool | None = None) -> Analysis:
  """The statistics of `journal` (one agent's view, analyses included) described in the module docstring.

  Args:
    seeds: the names of the task's seeds (their `# seed:` names), so the directions can name untried ones.
    lower_is_better: the metric's direction; None takes it from the journal's nodes.
  """
  nodes = journal.nodes
  lower = _direction(journal, lower_is_better)
  best_of = min if lower else max
  steps = [n for n in nodes if not n.is_analysis]
  scored = _scored(steps)
  lines = overview_lines(nodes, lower_is_better=lower, distinct=len(scored), unit="candidates",
                         failure_kind=failure_kind)
  untried_seeds = [s for s in dict.fromkeys(seeds) if s not in {seed_name(n.payload) for n in steps}]
  if not scored:
    lines.append("No candidate has been scored yet.")
    directions = "Nothing scored yet: avoid what made the failures above fail."
    if untried_seeds:
      directions += f" Seeds not tried yet: {', '.join(untried_seeds)}."
    return Analysis("\n".join(lines), directions)

  ranked = sorted(scored, key=lambda n: n.metric, reverse=not lower)
  lines.append("Best candidates: " + "; ".join(f"{fmt(n.metric)} {describe_candidate(n.payload)} (node {n.id})"
                                               for n in ranked[:BEST_SHOWN]) + ".")
  by_seed = collections.defaultdict(list)
  for node in scored:
    by_seed[seed_name(node.payload) or NO_SEED].append(node.metric)
  lines.append(_group_line("By seed", dict(by_seed), best_of))
  leaders = []
  if len(by_seed) > 1:
    top = best_of(by_seed, key=lambda s: statistics.fmean(by_seed[s]))
    leaders.append(f"seed {top} (mean {fmt(statistics.fmean(by_seed[top]))} over {len(by_seed[top])})")

  best = ranked[0]
  seed, untried_values = seed_name(best.payload), []
  if seed is not None:
    family = [n for n in scored if seed_name(n.payload) == seed]
    for name, knob in knobs_of(best.payload).items():
      groups = collections.defaultdict(list)
      for node in family:
        value = knobs_of(node.payload).get(name)
        if value is not None:
          groups[value.value].append(node.metric)
      order = [*knob.options, *(v for v in groups if v not in knob.options)]
      groups = {value: groups[value] for value in order if value in groups}
      lines.append(_group_line(f"Within {seed}, by {name}", groups, best_of))
      if len(groups) > 1:
        top = best_of(groups, key=lambda v: statistics.fmean(groups[v]))
        leaders.append(f"{name}={top} (mean {fmt(statistics.fmean(groups[top]))} over {len(groups[top])})")
      tried = {knobs_of(n.payload)[name].value for n in steps
               if seed_name(n.payload) == seed and name in knobs_of(n.payload)}
      missing = [value for value in knob.options if value not in tried]
      if missing:
        untried_values.append(f"{name}={', '.join(missing)}")
  directions = f"Best so far: {describe_candidate(best.payload)} (node {best.id})."
  if leaders:
    directions += " Best mean: " + ", ".join(leaders) + "."
  untried = ([f"seeds {', '.join(untried_seeds)}"] if untried_seeds else []) + (
      [f"{seed} {'; '.join(untried_values)}"] if untried_values else [])
  if untried:
    directions += " Not tried yet: " + "; ".join(untried) + "."
  return Analysis("\n".join(lines), directions)
