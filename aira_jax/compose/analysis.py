"""Statistics of a compose journal as short text: what the built-in agent writes when it analyses its results.

`analyze_layouts(journal, space)` reads the agent's steps (analyses aside) and states, with numbers computed
from them:
- how many steps were taken, scored (and how many distinct layouts that is) and failed, by kind of failure (the
  error's first word, as the report counts them);
- what changed since the previous analysis: steps, and the best score then and now;
- the best layouts so far;
- count, best and mean score of the distinct scored layouts grouped by three properties of a layout: the share
  of attention layers (quarters of the stack), how many runs the attention layers form, and in which third of
  the stack their centre lies.
Its directions name, for each property, the group with the best mean and the groups not tried yet. A space
without attention is described by its first primitive instead. The LLM operator's analyze prompt includes the
same text, so a model's analysis starts from the same numbers.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
from collections.abc import Callable

from aira_jax import primitives
from aira_jax.agents.analysis_text import fmt, overview_lines
from aira_jax.agents.journal import Journal, Node
from aira_jax.compose.layout_mutations import space_symbols
from aira_jax.layout import Layout

SHARE_GROUPS = ("0-25%", "25-50%", "50-75%", "75-100%")
"""Share of the focus primitive's layers: [0, 0.25), [0.25, 0.5), [0.5, 0.75), [0.75, 1]."""

RUN_GROUPS = ("0 runs", "1 run", "2 runs", "3+ runs")
POSITION_GROUPS = ("bottom third", "middle third", "top third")
BEST_SHOWN = 3


@dataclasses.dataclass(frozen=True)
class Analysis:
  """`text`: the statistics, a few lines; `directions`: one line on where to search next."""

  text: str
  directions: str


def focus_symbol(space) -> str:
  """The primitive the statistics group by: attention when the space has it, else its first primitive."""
  symbols = space_symbols(space)
  return "A" if "A" in symbols else symbols[0]


def share_group(layout: Layout, symbol: str) -> str:
  """Which quarter of the stack `symbol`'s share of layers falls in (one of `SHARE_GROUPS`)."""
  return SHARE_GROUPS[min(4 * layout.symbols.count(symbol) // layout.depth, 3)]


def run_group(layout: Layout, symbol: str) -> str:
  """How many runs `symbol`'s layers form (one of `RUN_GROUPS`)."""
  runs = sum(1 for s, _ in layout.runs() if s == symbol)
  return RUN_GROUPS[min(runs, 3)]


def position_group(layout: Layout, symbol: str) -> str | None:
  """The third of the stack (bottom first) holding the centre of `symbol`'s layers; None when it has none."""
  positions = [(i + 0.5) / layout.depth for i, s in enumerate(layout.symbols) if s == symbol]
  if not positions:
    return None
  return POSITION_GROUPS[min(int(statistics.fmean(positions) * 3), 2)]


def failure_kind(node: Node) -> str:
  """The first word of a failed node's error ("InvalidLayoutProposal", "out of memory", ...)."""
  return (node.error or "unknown").split(":", 1)[0][:60]


def _scored_layouts(nodes: list[Node]) -> list[tuple[Layout, float]]:
  """(layout, score) of each distinct layout scored among `nodes`, in the order first scored."""
  seen, out = set(), []
  for node in nodes:
    if not node.is_good or node.payload in seen:
      continue
    seen.add(node.payload)
    try:
      out.append((Layout.parse(node.payload), node.metric))
    except ValueError:  # not a layout (a node from another pipeline): nothing to group it by
      continue
  return out


def _groups(scored: list[tuple[Layout, float]], group: Callable[[Layout], str | None],
            order: tuple[str, ...]) -> dict[str, list[float]]:
  """Scores by group, groups in `order`, empty groups left out."""
  by_group = collections.defaultdict(list)
  for layout, score in scored:
    name = group(layout)
    if name is not None:
      by_group[name].append(score)
  return {name: by_group[name] for name in order if name in by_group}


def analyze_layouts(journal: Journal, space) -> Analysis:
  """The statistics of `journal` (one agent's view, analyses included) described in the module docstring."""
  nodes = journal.nodes
  lower = journal.lower_is_better
  best_of = min if lower else max
  steps = [n for n in nodes if not n.is_analysis]
  scored = _scored_layouts(steps)
  symbol = focus_symbol(space)
  name = primitives.get_primitive(symbol).name
  lines = overview_lines(nodes, lower_is_better=lower, distinct=len(scored), unit="layouts",
                         failure_kind=failure_kind)
  if not scored:
    lines.append("No layout has been scored yet.")
    return Analysis("\n".join(lines), "Nothing scored yet: avoid what made the failures above fail.")

  ranked = sorted(scored, key=lambda pair: pair[1], reverse=not lower)[:BEST_SHOWN]
  lines.append("Best layouts: " + "; ".join(f"{fmt(score)} {layout.run_length()} ({layout.ratio_text()})"
                                            for layout, score in ranked) + ".")
  depth = ranked[0][0].depth
  properties = [  # (label, group of a layout, the groups a layout of this depth can fall in)
      (f"{name} share", lambda layout: share_group(layout, symbol),
       {SHARE_GROUPS[min(4 * count // depth, 3)] for count in range(depth + 1)}, SHARE_GROUPS),
      (f"{name} runs", lambda layout: run_group(layout, symbol),
       {RUN_GROUPS[min(runs, 3)] for runs in range((depth + 1) // 2 + 1)}, RUN_GROUPS),
      (f"{name} centre", lambda layout: position_group(layout, symbol),
       set(POSITION_GROUPS) if depth > 1 else {"middle third"}, POSITION_GROUPS),
  ]
  leaders, untried = [], []
  for label, group, possible, order in properties:
    groups = _groups(scored, group, order)
    if groups:
      lines.append(f"By {label}: " + "; ".join(f"{g} n={len(v)} best {fmt(best_of(v))} mean "
                                               f"{fmt(statistics.fmean(v))}" for g, v in groups.items()) + ".")
    if len(groups) > 1:
      top = best_of(groups, key=lambda g: statistics.fmean(groups[g]))
      leaders.append(f"{label}: {top} (mean {fmt(statistics.fmean(groups[top]))} over {len(groups[top])})")
    missing = [g for g in order if g in possible and g not in groups] if len(space_symbols(space)) > 1 else []
    if missing:
      untried.append(f"{label}: {', '.join(missing)}")
  directions = f"Best so far: {ranked[0][0].run_length()}."
  if leaders:
    directions += " Best mean: " + ", ".join(leaders) + "."
  if untried:
    directions += " Not tried yet: " + "; ".join(untried) + "."
  return Analysis("\n".join(lines), directions)
