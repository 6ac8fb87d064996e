"""A search session on disk, shared by compose and design: journal + store + evaluation queue + progress.

`run_session(agents, evaluate, ...)` loads (or starts) the run's journal, mirrors its nodes into the run's
store, seeds the evaluation queue with every result already known (from the journal, and from the store's
evaluations, which are written the moment an evaluation finishes, before its node), runs the ensemble, and
prints one progress line per node. So a run killed at any point and started again on the same directory
loses no finished evaluation and repeats none. An evaluation that failed for infrastructure reasons is in
neither (aira_jax.faults), so a resumed run evaluates it again; `fault_meta` and `fault_lines` put crashes,
such failures and an interruption into the run's report, and `latest_analysis_lines` each agent's latest analysis.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Protocol

from aira_jax.agents.ensemble import AgentSpec, Budgets, EnsembleReport, analysis_headline, run_ensemble
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.agents.journal import Journal, Node


class NodeStore(Protocol):
  """Where a session mirrors its nodes. Both pipelines pass their `aira_jax.results.store.ResultStore`; the
  session takes it as this protocol rather than importing it, since the results package depends on this one
  (the store records `Node`s)."""

  def sync_from_journal(self, journal: Iterable[Node]) -> int:
    """Records every node of `journal` not recorded yet; returns how many were added."""

  def add_node(self, node: Node) -> bool:
    """Records `node` unless its id is already there; True if added."""


class SearchProgress:
  """One line per node: time, agent, what it did (an analysis: its first line), the steps taken (analyses
  aside) out of the budget, the evaluator's status, the best so far."""

  def __init__(self, total_steps: int | None, status: Callable[[], str], stream: IO[str] | None = None,
               show: Callable[[str], str] = lambda payload: payload):
    self.total_steps, self.status, self.show = total_steps, status, show
    self.stream = stream or sys.stderr
    self.start = time.monotonic()

  def __call__(self, node: Node, journal: Journal) -> None:
    best = journal.best(1)
    best_text = f"{best[0].metric:.4f} {self.show(best[0].payload)}" if best else "-"
    if node.is_buggy:
      result = f"failed: {(node.error or '')[:70]}"
    elif node.is_analysis:
      result = f"wrote: {analysis_headline(node)[:70]}"
    else:
      result = f"{node.metric:.4f}" + (" (duplicate)" if "evaluate" not in node.timings else "")
    taken = sum(not n.is_analysis for n in journal.nodes)
    steps = f"{taken}/{self.total_steps}" if self.total_steps else f"{taken}"
    print(f"[{time.monotonic() - self.start:6.0f}s] {node.agent_id:>12} {node.operator:9s} {result} | steps {steps} "
          f"| {self.status()} | best {best_text}", file=self.stream, flush=True)


def run_session(agents: list[AgentSpec], evaluate: Callable[[str], EvalResult], *, journal_path, store: NodeStore,
                key: Callable[[str], str], budgets: Budgets, lower_is_better: bool, workers: int = 1,
                shared_tree: bool = False, known: Iterable[tuple[str, EvalResult]] = (),
                progress: SearchProgress | None = None) -> tuple[EnsembleReport, Journal]:
  """Runs `agents` on the journal at `journal_path` (resumed when it exists); see the module docstring.

  Args:
    evaluate: payload -> EvalResult (called by the queue's workers).
    store: where nodes are mirrored (evaluations are recorded by `evaluate`'s owner as they finish).
    key: the de-duplication key of a payload.
    known: (payload, result) pairs already evaluated, from the store, answered from the cache.
  """
  journal = Journal.load(journal_path)
  store.sync_from_journal(journal)
  queue = EvaluationQueue(evaluate, workers=workers, key=key)
  for payload, result in known:
    queue.seed(payload, result)

  def on_node(node: Node, journal: Journal) -> None:
    store.add_node(node)
    if progress is not None:
      progress(node, journal)

  try:
    report = run_ensemble(agents, journal, queue, budgets, lower_is_better=lower_is_better, shared_tree=shared_tree,
                          on_node=on_node)
  finally:
    queue.shutdown(cancel_pending=True)
  if progress is not None:
    for agent_id, trace in report.crashes:
      print(f"agent {agent_id} crashed (restarted):\n{trace}", file=progress.stream)
    for agent_id, trace in report.infrastructure_failures:
      print(f"agent {agent_id}: an evaluation failed for infrastructure reasons (step skipped, not recorded as "
            f"the candidate's result):\n{trace}", file=progress.stream)
  return report, journal


def last_line(trace: str) -> str:
  """The exception and its message from the last line of a traceback, without the exception's module
  ("RuntimeError: operator bug"); an InfrastructureError's message alone (it names its cause)."""
  lines = [line for line in trace.strip().splitlines() if line.strip()]
  line = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*: )", "", lines[-1].strip() if lines else "")
  return line.removeprefix("InfrastructureError: ")


def fault_meta(report: EnsembleReport) -> dict:
  """For the run's store meta: crashes and infrastructure failures as [agent, last line of the traceback]."""
  return {"crashes": [[agent, last_line(trace)] for agent, trace in report.crashes],
          "infrastructure_failures": [[agent, last_line(trace)] for agent, trace in report.infrastructure_failures]}


def fault_lines(meta: dict, interrupted: str | None) -> list[str]:
  """Markdown lines for a report: the stage Ctrl-C stopped, the agents that crashed, the evaluations lost to
  infrastructure faults (from `fault_meta`); none for a clean run."""
  out = []
  if interrupted:
    out.append(f"**The run was interrupted during the {interrupted} stage**; what finished is saved, and "
               "`--resume` continues it.")
  crashes = meta.get("crashes") or []
  for agent in dict.fromkeys(agent for agent, _ in crashes):
    errors = [error for name, error in crashes if name == agent]
    out.append(f"**Agent {agent} crashed** ({len(errors)} time(s); last: `{errors[-1]}`).")
  failures = meta.get("infrastructure_failures") or []
  if failures:
    out.append(f"**{len(failures)} evaluation(s) failed for infrastructure reasons** (not the candidates' fault: "
               f"not recorded as their results, evaluated again on resume; last: `{failures[-1][1]}`).")
  return [line for text in out for line in (text, "")]


def distinct_best(journal: Journal, k: int) -> list[Node]:
  """The best `k` good nodes with distinct payloads, best first."""
  seen, best = set(), []
  for node in journal.best(len(journal)):
    if node.payload not in seen:
      seen.add(node.payload)
      best.append(node)
    if len(best) == k:
      break
  return best


MAX_ANALYSIS_CHARS = 1200
"""How much of an agent's latest analysis (and of its directions) a report quotes."""


def latest_analysis_lines(journal: Journal, max_chars: int = MAX_ANALYSIS_CHARS) -> list[str]:
  """For a report: a heading and one Markdown bullet per agent with its latest analysis that did not fail (after
  how many of its steps, the text on one line, the directions); nothing when no agent wrote one."""
  latest = []
  for agent in sorted({n.agent_id for n in journal.nodes}):
    mine = journal.by_agent(agent)
    analysis = next((n for n in reversed(mine) if n.is_analysis and not n.is_buggy), None)
    if analysis is None:
      continue
    after = sum(not n.is_analysis for n in mine[:mine.index(analysis)])
    text = " ".join(line.strip() for line in analysis.payload.splitlines() if line.strip())
    latest.append(f"- **{agent}**, after {after} steps: {text[:max_chars]}"
                  + (f" *Next:* {analysis.plan[:max_chars]}" if analysis.plan else ""))
  if not latest:
    return []
  return ["Latest analysis of each agent (written every `search.analyze_every` steps, never evaluated):", "",
          *latest]
