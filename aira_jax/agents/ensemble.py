"""The agent ensemble: K agents search concurrently under budgets, sharing one evaluation queue and one journal.

Each agent is a policy (which node to work on next) plus an operator (what one step writes: a layout or code,
from an LLM or the built-in heuristic). One step: the policy picks an `Action` from the agent's own nodes (or
from everyone's with `shared_tree=True`), the operator proposes a payload, the queue evaluates it, and the
result is appended to the journal as a `Node`. An agent with `analyze_every` > 0 also writes, every that many
steps, an analysis of its results (`action.analysis_due`; the operator's `analyze` method): an "analyze" node
that is never evaluated, has no metric, does not count against `steps_per_agent` (its tokens do count against
`max_tokens`) and is left out of what policies read (`Journal.candidates_only`), so it changes no search
decision; operators see it and put the latest one in their prompts. Failures are data, not crashes:
- an operator error (bad LLM reply, invalid layout, LLM error) becomes a buggy node with the reason (and the
  rejected payload, plan and tokens when the error carries them as attributes); a failed analysis too (a buggy
  "analyze" node, which no policy debugs; the next one is due `analyze_every` steps later);
- the candidate's fault in an evaluation (invalid payload, divergence, a failed sandbox stage) becomes a
  buggy node (the queue makes it a buggy result);
- an infrastructure fault in an evaluation (aira_jax.faults: the evaluator's own failure, after the queue's
  retries) is not the candidate's: no node is written, the step is skipped and listed in the report's
  `infrastructure_failures`, and the agent goes on (at most `max_restarts` times);
- anything else that escapes an agent's step is a crash, recorded in the report, and the agent restarts (at
  most `max_restarts` times), continuing from the journal.
Budgets: wall-clock seconds for the whole run, steps per agent (analyses aside) and LLM tokens over the journal;
an agent stops when its budget is spent, the run when all agents have stopped. Ctrl-C
(`aira_jax.faults.stop_on_ctrl_c`) stops the agents: a running evaluation stops within a training step
(`Interrupted`, no node), and an agent still busy `STOP_GRACE_S` later (an LLM call, a compilation) is left
behind and writes nothing more; the report is marked interrupted. The journal file is complete up to there, so
a run started again on the same journal (`Journal.load`) resumes: steps already taken count against the budgets,
evaluated payloads are answered from the cache, and the analysis schedule goes on where it was.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from aira_jax.agents.action import Action, Policy, analysis_due
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.agents.journal import Journal
from aira_jax.agents.node import Node, new_node_id
from aira_jax.faults import InfrastructureError, Interrupted, stop_on_ctrl_c, stop_requested
from aira_jax.llm.base import LLMBudgetExceeded, LLMError

STOP_GRACE_S = 5.0  # after Ctrl-C, how long the run waits for agents to finish their step


@dataclasses.dataclass(frozen=True)
class Proposal:
  """What an operator wrote for one action."""

  plan: str
  payload: str
  tokens: int = 0


class Operator(Protocol):
  """Turns an action into a proposal. Returns a `Proposal` or a (plan, payload) pair; raises `ValueError`
  (bad reply, invalid payload) or `LLMError` for a failed step.

  An operator that can analyse also has `analyze(action, journal, rng) -> Proposal` for an "analyze" action:
  the payload is the analysis text, the plan the directions it draws (same failures as `propose`). Only agents
  whose operator has it may set `AgentSpec.analyze_every`."""

  def propose(self, action: Action, journal: Journal, rng: random.Random) -> Proposal | tuple[str, str]:
    ...


@dataclasses.dataclass(frozen=True)
class AgentSpec:
  """One agent: a name, a policy, an operator, the seed of its random choices, and how many of its steps pass
  between two analyses of its results (0 = it never analyses; the operator must have `analyze` otherwise)."""

  agent_id: str
  policy: Policy
  operator: Operator
  seed: int = 0
  analyze_every: int = 0

  def __post_init__(self):
    if self.analyze_every < 0:
      raise ValueError(f"agent {self.agent_id}: analyze_every must be >= 0 (0 = never), got {self.analyze_every}")


@dataclasses.dataclass(frozen=True)
class Budgets:
  """Limits of a run; None = unlimited. `steps_per_agent` counts an agent's nodes other than analyses;
  `max_tokens` counts the tokens recorded on all the journal's nodes."""

  wall_clock_s: float | None = None
  steps_per_agent: int | None = None
  max_tokens: int | None = None


@dataclasses.dataclass
class EnsembleReport:
  """What a run did: steps per agent (analyses aside), crashes (agent id, traceback), why each agent stopped,
  timings, and the steps skipped for infrastructure faults (agent id, traceback), which no node records."""

  steps: dict[str, int]
  stop_reasons: dict[str, str]
  crashes: list[tuple[str, str]]
  evaluations: int
  seconds: float
  interrupted: bool = False
  infrastructure_failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


_STEP_FAILURES = (ValueError, LLMError)  # an operator's failed step: recorded as a buggy node


def _as_proposal(value: Any) -> Proposal:
  if isinstance(value, Proposal):
    return value
  plan, payload = value
  return Proposal(plan=str(plan), payload=str(payload))


def _steps(journal: Journal, agent_id: str) -> int:
  """How many steps `agent_id` has taken: its nodes other than analyses."""
  return sum(not n.is_analysis for n in journal.by_agent(agent_id))


def _agent_view(journal: Journal, agent_id: str) -> Journal:
  """An in-memory journal of `agent_id`'s nodes (its own search tree)."""
  view = Journal()
  for node in journal.by_agent(agent_id):
    view.append(node)
  return view


class _Run:
  """Shared state of one ensemble run."""

  def __init__(self, journal, queue, budgets, lower_is_better, shared_tree, max_restarts, on_node):
    self.journal, self.queue, self.budgets = journal, queue, budgets
    self.lower_is_better, self.shared_tree, self.max_restarts = lower_is_better, shared_tree, max_restarts
    self.on_node = on_node
    self.stop = threading.Event()
    self.start = time.monotonic()
    self.crashes: list[tuple[str, str]] = []
    self.infrastructure_failures: list[tuple[str, str]] = []
    self.stop_reasons: dict[str, str] = {}
    self.lock = threading.Lock()
    self.closed = False  # set when run_ensemble returns: an agent left behind writes nothing more

  def budget_reason(self, agent_id: str) -> str | None:
    budgets = self.budgets
    if self.stop.is_set() or stop_requested() or self.closed:
      return "interrupted"
    if budgets.wall_clock_s is not None and time.monotonic() - self.start >= budgets.wall_clock_s:
      return "wall-clock budget"
    if budgets.steps_per_agent is not None and _steps(self.journal, agent_id) >= budgets.steps_per_agent:
      return "step budget"
    if budgets.max_tokens is not None and sum(n.tokens for n in self.journal.nodes) >= budgets.max_tokens:
      return "token budget"
    return None

  def step(self, agent: AgentSpec, rng: random.Random) -> None:
    view = self.journal if self.shared_tree else _agent_view(self.journal, agent.agent_id)
    action = analysis_due(self.journal.by_agent(agent.agent_id), agent.analyze_every)
    if action is None:
      action = agent.policy.next_action(view.candidates_only(), rng)
    started = time.perf_counter()
    write = agent.operator.analyze if action.operator == "analyze" else agent.operator.propose
    try:
      proposal = _as_proposal(write(action, view, rng))
    except LLMBudgetExceeded:
      raise
    except _STEP_FAILURES as e:  # a rejected proposal keeps what was proposed and the tokens it cost
      rejected = Proposal(plan=getattr(e, "plan", ""), payload=getattr(e, "payload", ""),
                          tokens=getattr(e, "tokens", 0))
      self.record(agent, action, rejected, None, time.perf_counter() - started, error=f"{type(e).__name__}: {e}")
      return
    propose_s = time.perf_counter() - started
    if action.operator == "analyze":  # an analysis is written, never evaluated
      self.record(agent, action, proposal, None, propose_s)
      return
    self.record(agent, action, proposal, self.queue.evaluate(proposal.payload), propose_s)

  def record(self, agent, action, proposal, result: EvalResult | None, propose_s, error=None) -> Node:
    """Appends the step's node: `result` None means not evaluated, which is a failure (`error`) except for an
    analysis that succeeded."""
    timings = {"propose": propose_s}
    if result is not None and not result.cached:
      timings["evaluate"] = result.seconds
    written = action.operator == "analyze" and error is None
    node = Node(
        id=new_node_id(), operator=action.operator, parent_ids=action.parent_ids, plan=proposal.plan,
        payload=proposal.payload, metric=None if result is None or result.is_buggy else result.metric,
        is_buggy=not written and (result is None or result.is_buggy),
        error=error if result is None else result.error, output_excerpt="" if result is None else result.output,
        timings=timings, tokens=proposal.tokens, agent_id=agent.agent_id, lower_is_better=self.lower_is_better)
    with self.lock:
      if self.closed:
        raise Interrupted("the run ended while this agent was busy")
      self.journal.append(node)
      if self.on_node is not None:
        self.on_node(node, self.journal)
    return node

  def run_agent(self, agent: AgentSpec) -> None:
    restarts = 0
    rng = random.Random(f"{agent.seed}:{agent.agent_id}:{len(self.journal.by_agent(agent.agent_id))}")
    while True:
      reason = self.budget_reason(agent.agent_id)
      if reason is not None:
        self.stop_reasons[agent.agent_id] = reason
        return
      try:
        self.step(agent, rng)
      except LLMBudgetExceeded as e:
        self.stop_reasons[agent.agent_id] = f"token budget ({e})"
        return
      except Interrupted:
        self.stop_reasons[agent.agent_id] = "interrupted"
        return
      except InfrastructureError:  # not the candidate's fault: no node, the step is skipped
        with self.lock:
          self.infrastructure_failures.append((agent.agent_id, traceback.format_exc()))
          failures = sum(agent_id == agent.agent_id for agent_id, _ in self.infrastructure_failures)
        if failures > self.max_restarts:
          self.stop_reasons[agent.agent_id] = f"{failures} infrastructure failures"
          return
      except Exception:  # noqa: BLE001  (an agent crash: recorded, then the agent restarts)
        if self.closed:
          return
        with self.lock:
          self.crashes.append((agent.agent_id, traceback.format_exc()))
        restarts += 1
        if restarts > self.max_restarts:
          self.stop_reasons[agent.agent_id] = f"crashed {restarts} times"
          return


def print_progress(node: Node, journal: Journal, *, stream=None) -> None:
  """A one-line progress display for `run_ensemble(on_node=...)`: agent, step, operator, result, best so far."""
  import sys
  best = journal.best(1)
  best_text = f"{best[0].metric:.4g}" if best else "-"
  if node.is_buggy:
    result = f"buggy: {(node.error or '')[:60]}"
  elif node.is_analysis:
    result = f"analysis: {analysis_headline(node)[:60]}"
  else:
    result = f"metric {node.metric:.4g}"
  print(f"[{node.agent_id} #{len(journal.by_agent(node.agent_id))}] {node.operator:9s} {result}  (best {best_text}, "
        f"{len(journal)} nodes)", file=stream or sys.stderr, flush=True)


def analysis_headline(node: Node) -> str:
  """The first non-empty line of an analysis's text."""
  return next((line.strip() for line in node.payload.splitlines() if line.strip()), "(empty)")


def seed_queue_from_journal(queue: EvaluationQueue, journal: Journal) -> None:
  """Lets a resumed run answer already-evaluated payloads from the cache."""
  for node in journal.nodes:
    # Operator failures have no payload, or a rejected one (invalid here, so the evaluator would reject it too);
    # an analysis's payload is its text, never evaluated.
    if node.payload and not node.is_analysis:
      queue.seed(node.payload, EvalResult(metric=node.metric, is_buggy=node.is_buggy, error=node.error,
                                          output=node.output_excerpt))


def run_ensemble(agents: list[AgentSpec], journal: Journal, queue: EvaluationQueue, budgets: Budgets, *,
                 lower_is_better: bool = False, shared_tree: bool = False, max_restarts: int = 3,
                 on_node: Callable[[Node, Journal], None] | None = None) -> EnsembleReport:
  """Runs `agents` concurrently (one thread each) until every agent's budget is spent or Ctrl-C.

  Args:
    agents: distinct agent ids.
    journal: where nodes go (file-backed for a resumable run; may already hold nodes from an earlier run).
    queue: the shared evaluation queue.
    budgets: wall clock, steps per agent, tokens.
    lower_is_better: the metric's direction (losses: True; accuracies: False).
    shared_tree: policies see every agent's nodes instead of their own.
    max_restarts: how often a crashed agent is restarted before it is stopped.
    on_node: called after every appended node (progress display).
  """
  ids = [a.agent_id for a in agents]
  if len(set(ids)) != len(ids) or not ids:
    raise ValueError(f"agents need distinct ids and at least one agent; got {ids}")
  for agent in agents:
    if agent.analyze_every and not callable(getattr(agent.operator, "analyze", None)):
      raise ValueError(f"agent {agent.agent_id}: analyze_every={agent.analyze_every} but its operator "
                       f"{type(agent.operator).__name__} cannot analyse (it has no analyze method); use 0")
  if budgets.wall_clock_s is None and budgets.steps_per_agent is None and budgets.max_tokens is None:
    raise ValueError("give at least one budget (wall_clock_s, steps_per_agent or max_tokens) so the run ends")
  run = _Run(journal, queue, budgets, lower_is_better, shared_tree, max_restarts, on_node)
  with stop_on_ctrl_c():
    seed_queue_from_journal(queue, journal)
    before = queue.evaluations
    interrupted = _run_agents(run, agents)
  with run.lock:
    stop_reasons = {**{i: "interrupted (left busy)" for i in ids}, **run.stop_reasons}
    return EnsembleReport(
        steps={i: _steps(journal, i) for i in ids}, stop_reasons=stop_reasons, crashes=list(run.crashes),
        evaluations=queue.evaluations - before, seconds=time.monotonic() - run.start, interrupted=interrupted,
        infrastructure_failures=list(run.infrastructure_failures))


def _run_agents(run: _Run, agents: list[AgentSpec]) -> bool:
  """Runs each agent on its own thread until all have stopped, or until `STOP_GRACE_S` after Ctrl-C; True when
  stopped by Ctrl-C. Agents still busy then are left behind (daemon threads; `run.closed` keeps them from
  writing)."""
  # The main thread waits on an Event, not Thread.join: a KeyboardInterrupt inside join() can leave CPython
  # believing a still-running thread has finished.
  running = [len(agents)]
  all_done = threading.Event()

  def agent_thread(agent):
    try:
      run.run_agent(agent)
    finally:
      with run.lock:
        running[0] -= 1
        if running[0] == 0:
          all_done.set()

  threads = [threading.Thread(target=agent_thread, args=(a,), name=f"agent-{a.agent_id}", daemon=True)
             for a in agents]
  for t in threads:
    t.start()
  try:
    while not all_done.wait(timeout=0.1) and not stop_requested():
      pass
    if stop_requested():
      run.stop.set()
      all_done.wait(timeout=STOP_GRACE_S)
  except KeyboardInterrupt:  # a second Ctrl-C (without a CLI's last words), or one outside the handler
    run.stop.set()
  with run.lock:
    run.closed = True
  return run.stop.is_set()
