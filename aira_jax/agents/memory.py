"""Prompt memory built from the journal: what worked (for draft / improve), what failed (for debug), and the
agent's latest written analysis of its results.

aira-dojo gives draft and improve operators a summary of the good nodes, and the debug operator the chain
of failed fixes that led to the node it repairs. On top of that, an agent that analyses its results on a
schedule (`aira_jax.agents.action.analysis_due`) sees its latest analysis in later prompts
(`analysis_memory`). Every text has a character budget, because prompts do; when trimmed they say so, so the
model (and whoever reads the log) knows something was left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.node import trim_excerpt

DEFAULT_MAX_CHARS = 6000
MIN_MAX_CHARS = 80
"""The smallest budget accepted: room for a trim notice and a little text."""


def fit_entries(entries: Sequence[str], max_chars: int, *, keep: str = "head", what: str = "entries") -> str:
  """Joins entries with blank lines, trimmed to at most `max_chars` characters.

  Whole entries are kept while they fit; the next one is cut to the space left; a final notice says how
  many of the entries were shown in full. `keep="head"` keeps the first entries, `keep="tail"` the last ones
  (their order in the text is unchanged; the notice then comes first).
  """
  if max_chars < MIN_MAX_CHARS:
    raise ValueError(f"max_chars must be >= {MIN_MAX_CHARS}, got {max_chars}")
  if keep not in ("head", "tail"):
    raise ValueError(f"keep must be 'head' or 'tail', got {keep!r}")
  full = "\n\n".join(entries)
  if len(full) <= max_chars:
    return full
  ordered = list(entries) if keep == "head" else list(reversed(entries))
  notice_template = "[trimmed to {limit} chars: {shown} of {total} {what} shown in full]"
  notice = notice_template.format(limit=max_chars, shown=len(entries), total=len(entries), what=what)
  budget = max_chars - len(notice) - 2  # two newlines separate the notice
  kept: list[str] = []
  used = 0
  shown = 0
  for entry in ordered:
    separator = 2 if kept else 0
    if used + separator + len(entry) > budget:
      room = budget - used - separator - 4  # 4 = the " ..." that marks the cut
      if room > 20:
        kept.append(entry[:room] + " ..." if keep == "head" else "... " + entry[-room:])
      break
    kept.append(entry)
    used += separator + len(entry)
    shown += 1
  notice = notice_template.format(limit=max_chars, shown=shown, total=len(entries), what=what)
  if keep == "head":
    return "\n\n".join(kept) + ("\n\n" if kept else "") + notice
  return notice + ("\n\n" if kept else "") + "\n\n".join(reversed(kept))


def summarize_good_nodes(journal: Journal, k: int = 5, max_chars: int = DEFAULT_MAX_CHARS) -> str:
  """The k best good nodes, best first: rank, id, metric, plan and payload of each.

  Returns "" when no node is good. Over budget, the worst-ranked entries are cut first.
  """
  best = journal.best(k)
  if not best:
    return ""
  direction = "lower is better" if journal.lower_is_better else "higher is better"
  entries = [
      f"#{rank} node {node.id} metric={node.metric:.6g} ({direction})\nplan: {node.plan}\npayload:\n{node.payload}"
      for rank, node in enumerate(best, start=1)
  ]
  return fit_entries(entries, max_chars, keep="head", what="good nodes")


def debug_chain(journal: Journal, node_id: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
  """The failed attempts that led to `node_id`, oldest first: each one's operator, plan and error.

  The chain is `node_id` and its ancestors up through consecutive debug nodes, plus the first non-debug
  ancestor (the original attempt that failed): the same path `Journal.debug_depth` counts. Over budget,
  the oldest attempts are cut first (the latest failures matter most for the next fix).
  """
  chain = [journal.get(node_id)]
  while chain[-1].operator == "debug":
    chain.append(journal.get(chain[-1].parent_ids[0]))
  chain.reverse()
  entries = [
      f"attempt {i} ({node.operator}, node {node.id})\nplan: {node.plan}\nerror: {node.error or '(none recorded)'}"
      for i, node in enumerate(chain, start=1)
  ]
  return fit_entries(entries, max_chars, keep="tail", what="attempts")


def latest_analysis(journal: Journal) -> Node | None:
  """The most recent analysis that did not fail, or None."""
  for node in reversed(journal.nodes):
    if node.is_analysis and not node.is_buggy:
      return node
  return None


def analysis_memory(journal: Journal, max_chars: int = DEFAULT_MAX_CHARS) -> str:
  """The latest analysis (`latest_analysis`) for a prompt: after how many steps it was written, its text and
  the directions it drew; "" when there is none. Over budget, the text keeps its head and tail."""
  if max_chars < MIN_MAX_CHARS:
    raise ValueError(f"max_chars must be >= {MIN_MAX_CHARS}, got {max_chars}")
  node = latest_analysis(journal)
  if node is None:
    return ""
  steps = 0
  for earlier in journal.nodes:
    if earlier.id == node.id:
      break
    steps += not earlier.is_analysis
  text = f"(analysis {node.id}, written after {steps} steps)\n{node.payload.strip()}"
  if node.plan.strip():
    text += f"\nNext directions: {node.plan.strip()}"
  return trim_excerpt(text, max_chars)
