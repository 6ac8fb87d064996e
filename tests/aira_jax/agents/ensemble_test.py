"""Tests for the agent ensemble and the shared evaluation queue: budgets, failures as nodes, crashes restarted,
duplicates from the cache, Ctrl-C, resuming from the journal file, and scheduled analyses."""

import signal
import threading
import time

import pytest

from aira_jax.agents import Journal, make_policy
from aira_jax.agents.ensemble import (AgentSpec, Budgets, Proposal, print_progress, run_ensemble,
                                      seed_queue_from_journal)
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.compose.heuristic import HeuristicOperator
from aira_jax.layout import Layout
from aira_jax.llm import LLMError, ScriptedClient


def attention_fraction(payload: str, delay_s: float = 0.0) -> EvalResult:
  """A stand-in fitness: the share of attention layers (a real evaluator trains the layout)."""
  time.sleep(delay_s)
  layout = Layout.parse(payload, space="AM")
  if layout.depth != 8:
    raise ValueError(f"wrong depth {layout.depth}, expected 8")
  return EvalResult(metric=layout.ratios()["A"], output=f"trained {layout.run_length()}")


def heuristic_agent(name, seed=0, policy="greedy"):
  return AgentSpec(name, make_policy(policy), HeuristicOperator("AM", 8), seed=seed)


def canonical(payload):
  return str(Layout.parse(payload))


def test_heuristic_agents_search_within_their_step_budget():
  journal = Journal()
  queue = EvaluationQueue(attention_fraction, workers=2, key=canonical)
  report = run_ensemble([heuristic_agent(f"a{i}", seed=i) for i in range(3)], journal, queue,
                        Budgets(steps_per_agent=12))
  assert report.steps == {"a0": 12, "a1": 12, "a2": 12} and len(journal) == 36
  assert set(report.stop_reasons.values()) == {"step budget"} and not report.crashes
  assert report.evaluations == len({canonical(n.payload) for n in journal.nodes})  # duplicates from the cache
  for node in journal.nodes:
    assert node.metric == pytest.approx(Layout.parse(node.payload).ratios()["A"])
    for parent in node.parent_ids:  # each agent searched its own tree
      assert journal.get(parent).agent_id == node.agent_id
  # Greedy: 5 drafts first, then improvements of the best node.
  operators = [n.operator for n in journal.by_agent("a0")]
  assert operators[:5] == ["draft"] * 5 and set(operators[5:]) <= {"improve", "debug"}
  assert max(n.metric for n in journal.by_agent("a0")) >= max(n.metric for n in journal.by_agent("a0")[:5])


class FlakyOperator:
  """Raises a bug (RuntimeError) on its 2nd call and a bad-reply error (ValueError) on its 4th."""

  def __init__(self):
    self.inner, self.calls = HeuristicOperator("AM", 8), 0

  def propose(self, action, journal, rng):
    self.calls += 1
    if self.calls == 2:
      raise RuntimeError("operator bug")
    if self.calls == 4:
      raise ValueError("reply has no layout")
    return Proposal(*self.inner.propose(action, journal, rng), tokens=10)


def test_failures_become_buggy_nodes_and_crashed_agents_restart():
  journal = Journal()
  agents = [heuristic_agent("steady"), AgentSpec("flaky", make_policy("greedy"), FlakyOperator())]
  report = run_ensemble(agents, journal, EvaluationQueue(attention_fraction), Budgets(steps_per_agent=6))
  assert report.steps == {"steady": 6, "flaky": 6}
  assert [agent for agent, _ in report.crashes] == ["flaky"] and "operator bug" in report.crashes[0][1]
  bad_reply = [n for n in journal.by_agent("flaky") if n.error and "no layout" in n.error]
  assert len(bad_reply) == 1 and bad_reply[0].is_buggy and bad_reply[0].payload == ""
  assert sum(n.tokens for n in journal.by_agent("flaky")) == 10 * 5


def test_evaluation_errors_are_buggy_nodes_and_progress_is_shown(capsys):
  journal = Journal()
  wrong_depth = AgentSpec("short", make_policy("one_shot"), HeuristicOperator("AM", 5))
  run_ensemble([wrong_depth], journal, EvaluationQueue(attention_fraction), Budgets(steps_per_agent=3),
               on_node=print_progress)
  assert all(n.is_buggy and "wrong depth 5" in n.error and n.metric is None for n in journal.nodes)
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 3 and lines[-1].startswith("[short #3] draft") and "buggy: ValueError: wrong depth" in lines[-1]


def test_wall_clock_and_token_budgets_end_the_run():
  start = time.monotonic()
  queue = EvaluationQueue(lambda p: attention_fraction(p, delay_s=0.05), workers=4)
  report = run_ensemble([heuristic_agent(f"a{i}") for i in range(2)], Journal(), queue, Budgets(wall_clock_s=0.6))
  assert time.monotonic() - start < 2.0 and set(report.stop_reasons.values()) == {"wall-clock budget"}

  class Spender:
    def propose(self, action, journal, rng):
      return Proposal(*HeuristicOperator("AM", 8).propose(action, journal, rng), tokens=100)

  journal = Journal()
  report = run_ensemble([AgentSpec(f"t{i}", make_policy("greedy"), Spender()) for i in range(2)], journal,
                        EvaluationQueue(attention_fraction), Budgets(max_tokens=1000))
  assert 1000 <= sum(n.tokens for n in journal.nodes) <= 1000 + 2 * 100  # at most one step in flight per agent
  assert set(report.stop_reasons.values()) == {"token budget"}


class LLMLayoutOperator:
  """A minimal LLM-backed operator: asks for {"plan", "layout"} as JSON (compose builds the real one)."""

  schema = {"type": "object", "required": ["plan", "layout"],
            "properties": {"plan": {"type": "string"}, "layout": {"type": "string"}}}

  def __init__(self, client):
    self.client = client

  def propose(self, action, journal, rng):
    completion = self.client.generate(f"{action.operator} a layout of 8 layers over A and M", schema=self.schema)
    layout = Layout.parse(completion.parsed["layout"], space="AM")  # ValueError: a buggy node
    return Proposal(completion.parsed["plan"], layout.text, tokens=completion.usage.total_tokens)


def test_ensemble_with_scripted_llm_clients_one_of_which_raises():
  good = ScriptedClient(['{"plan": "more attention", "layout": "4A+4M"}', '{"plan": "alternate", "layout": "4AM"}'],
                        cycle=True)
  failing = ScriptedClient(['{"plan": "p", "layout": "8A"}', LLMError("service unavailable"),
                            '{"plan": "bad", "layout": "8X"}', RuntimeError("client bug")], cycle=True)
  journal = Journal()
  agents = [AgentSpec("good", make_policy("greedy"), LLMLayoutOperator(good)),
            AgentSpec("failing", make_policy("greedy"), LLMLayoutOperator(failing))]
  start = time.monotonic()
  report = run_ensemble(agents, journal, EvaluationQueue(attention_fraction, key=canonical),
                        Budgets(steps_per_agent=8, wall_clock_s=20), max_restarts=5)
  assert time.monotonic() - start < 20
  # The failing client cycles: ok, LLM error, invalid layout, crash. 8 nodes take 10 calls; 2 crashed.
  assert report.steps == {"good": 8, "failing": 8} and len(failing.calls) == 10
  assert len(report.crashes) == 2 and all(agent == "failing" and "client bug" in tb for agent, tb in report.crashes)
  errors = [n.error for n in journal.by_agent("failing") if n.is_buggy]
  assert any("service unavailable" in e for e in errors) and any("unknown primitive 'X'" in e for e in errors)
  assert report.evaluations == 3  # 4A+4M, AMAMAMAM, 8A; every repeat answered from the cache
  assert len(good.calls) == 8


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path):
  path = tmp_path / "journal.jsonl"
  slow = lambda p: attention_fraction(p, delay_s=0.02)
  timer = threading.Timer(0.4, lambda: signal.raise_signal(signal.SIGINT))
  timer.start()
  handler = signal.getsignal(signal.SIGINT)
  report = run_ensemble([heuristic_agent("a0")], Journal(path), EvaluationQueue(slow), Budgets(steps_per_agent=10**6))
  timer.cancel()
  assert report.interrupted and report.steps["a0"] > 0
  assert signal.getsignal(signal.SIGINT) is handler  # the run's Ctrl-C handler is gone
  interrupted_steps = report.steps["a0"]

  resumed = Journal.load(path)
  assert len(resumed) == interrupted_steps  # every finished step was written
  queue = EvaluationQueue(slow, key=canonical)
  report = run_ensemble([heuristic_agent("a0")], resumed, queue, Budgets(steps_per_agent=interrupted_steps + 5))
  assert report.steps["a0"] == interrupted_steps + 5 and not report.interrupted
  assert len(Journal.load(path)) == interrupted_steps + 5
  assert report.evaluations <= 5  # earlier payloads come from the cache


def test_bad_arguments():
  with pytest.raises(ValueError, match="distinct ids"):
    run_ensemble([heuristic_agent("a"), heuristic_agent("a")], Journal(), EvaluationQueue(attention_fraction),
                 Budgets(steps_per_agent=1))
  with pytest.raises(ValueError, match="at least one budget"):
    run_ensemble([heuristic_agent("a")], Journal(), EvaluationQueue(attention_fraction), Budgets())


def test_queue_deduplicates_concurrent_submissions_and_catches_candidate_errors():
  calls = []

  def evaluate(payload):
    calls.append(payload)
    time.sleep(0.05)
    if payload == "boom":
      raise ValueError("unknown primitive 'b'")
    return EvalResult(metric=1.0)

  queue = EvaluationQueue(evaluate, workers=4)
  futures = [queue.submit("AM") for _ in range(5)] + [queue.submit("boom")]
  results = [f.result() for f in futures]
  assert calls.count("AM") == 1 and [r.cached for r in results[:5]] == [False, True, True, True, True]
  assert results[5].is_buggy and "ValueError: unknown primitive 'b'" in results[5].error


class ListOperator:
  """Proposes `payloads[len(journal)]`: after a skipped step the agent proposes the same payload again."""

  def __init__(self, payloads, release=None):
    self.payloads, self.release = payloads, release

  def propose(self, action, journal, rng):
    if self.release is not None and len(journal):
      self.release.wait()  # a step that blocks (an LLM call that does not return)
    return "plan", self.payloads[len(journal) % len(self.payloads)]


def test_infrastructure_faults_skip_the_step_and_a_resumed_run_evaluates_again(tmp_path):
  path = tmp_path / "journal.jsonl"
  device = {"lost": True}
  calls = []

  def evaluate(payload):
    calls.append(payload)
    if payload == "8A" and device["lost"]:
      raise RuntimeError("device lost")
    return attention_fraction(payload)

  agent = AgentSpec("a", make_policy("greedy"), ListOperator(["4A+4M", "8A", "8X"]))
  report = run_ensemble([agent], Journal(path), EvaluationQueue(evaluate, key=canonical, retry_pause_s=0),
                        Budgets(steps_per_agent=3), max_restarts=1)
  nodes = Journal.load(path).nodes
  assert [n.payload for n in nodes] == ["4A+4M"]  # the layout the device failed on is not blamed
  assert calls == ["4A+4M"] + ["8A"] * 6  # two skipped steps, three tries each
  assert [agent for agent, _ in report.infrastructure_failures] == ["a", "a"] and not report.crashes
  assert "RuntimeError: device lost (failed 3 times)" in report.infrastructure_failures[0][1]
  assert report.stop_reasons == {"a": "2 infrastructure failures"}

  device["lost"] = False
  resumed = Journal.load(path)
  report = run_ensemble([agent], resumed, EvaluationQueue(evaluate, key=canonical, retry_pause_s=0),
                        Budgets(steps_per_agent=3))
  nodes = Journal.load(path).nodes
  assert [n.payload for n in nodes] == ["4A+4M", "8A", "8X"]
  assert nodes[1].metric == 1.0 and not nodes[1].is_buggy  # evaluated again, and fine
  assert nodes[2].is_buggy and "unknown primitive 'X'" in nodes[2].error  # the candidate's own fault
  assert calls[7:] == ["8A", "8X"] and not report.infrastructure_failures


def test_ctrl_c_stops_a_long_evaluation_within_a_step_and_records_nothing_for_it(tmp_path):
  from aira_jax.faults import check_stop

  def long_evaluation(payload):
    for _ in range(2000):  # 20 s unless stopped
      check_stop()
      time.sleep(0.01)
    return attention_fraction(payload)

  path = tmp_path / "journal.jsonl"
  timer = threading.Timer(0.3, lambda: signal.raise_signal(signal.SIGINT))
  timer.start()
  started = time.monotonic()
  report = run_ensemble([AgentSpec("a", make_policy("greedy"), ListOperator(["4A+4M"]))], Journal(path),
                        EvaluationQueue(long_evaluation), Budgets(steps_per_agent=1))
  assert time.monotonic() - started < 3
  assert report.interrupted and report.stop_reasons == {"a": "interrupted"}
  assert len(Journal.load(path)) == 0 and not report.infrastructure_failures and not report.crashes


def test_an_agent_still_busy_after_the_grace_period_is_left_behind_and_writes_nothing(tmp_path, monkeypatch):
  from aira_jax.agents import ensemble
  monkeypatch.setattr(ensemble, "STOP_GRACE_S", 0.3)
  release = threading.Event()
  path = tmp_path / "journal.jsonl"
  timer = threading.Timer(0.3, lambda: signal.raise_signal(signal.SIGINT))
  timer.start()
  started = time.monotonic()
  report = run_ensemble([AgentSpec("a", make_policy("greedy"), ListOperator(["4A+4M", "8A"], release))],
                        Journal(path), EvaluationQueue(attention_fraction), Budgets(steps_per_agent=5))
  assert time.monotonic() - started < 3
  assert report.interrupted and report.stop_reasons == {"a": "interrupted (left busy)"}
  release.set()  # the blocked step returns after the run ended
  time.sleep(0.3)
  assert len(Journal.load(path)) == 1 and report.steps == {"a": 1} and not report.crashes


# Analyses: written on a schedule, never evaluated, invisible to the policies and the step budget.


def _candidates(journal):
  """(operator, payload, metric, parent payloads) of each step: what the search did, without node ids."""
  return [(n.operator, n.payload, n.metric, tuple(journal.get(p).payload for p in n.parent_ids))
          for n in journal.nodes if not n.is_analysis]


@pytest.mark.parametrize("policy", ["greedy", "mcts", "evolutionary"])
def test_analyses_come_every_n_steps_and_change_no_search_decision(policy, capsys):
  runs = {}
  for every in (0, 3):
    journal = Journal()
    queue = EvaluationQueue(attention_fraction, key=canonical)
    agent = AgentSpec("a", make_policy(policy), HeuristicOperator("AM", 8), seed=4, analyze_every=every)
    report = run_ensemble([agent], journal, queue, Budgets(steps_per_agent=11), on_node=print_progress)
    runs[every] = journal, report, queue.evaluations
  (plain, plain_report, plain_evaluations), (analysed, report, evaluations) = runs[0], runs[3]
  assert _candidates(analysed) == _candidates(plain)  # the same steps, in the same order, with the same scores
  assert report.steps == plain_report.steps == {"a": 11} and evaluations == plain_evaluations
  assert [n.operator == "analyze" for n in analysed.nodes] == [False] * 3 + [True] + ([False] * 3 + [True]) * 2 + \
      [False] * 2  # after steps 3, 6 and 9; none after the last step
  for analysis in analysed.analyses():
    assert analysis.metric is None and not analysis.is_buggy and "evaluate" not in analysis.timings
    parent = analysed.get(analysis.parent_ids[0])
    assert analysed.nodes.index(parent) == analysed.nodes.index(analysis) - 1  # hung under the latest step
    assert "steps:" in analysis.payload and "Best layouts:" in analysis.payload and analysis.plan
  lines = [line for line in capsys.readouterr().err.splitlines() if "analyze" in line]
  assert len(lines) == 3 and all(" analysis: " in line for line in lines)


class AnalysingOperator:
  """The heuristic operator with an analyze step that fails every other time (a bad reply)."""

  def __init__(self):
    self.inner, self.analyses = HeuristicOperator("AM", 8), 0

  def propose(self, action, journal, rng):
    return self.inner.propose(action, journal, rng)

  def analyze(self, action, journal, rng):
    self.analyses += 1
    if self.analyses % 2:
      error = ValueError("the reply is not JSON")
      error.tokens = 7
      raise error
    return Proposal("next: more attention", f"analysis {self.analyses} of {len(journal)} nodes", tokens=5)


def test_a_failed_analysis_is_a_buggy_node_no_policy_debugs_and_a_resumed_run_keeps_the_schedule(tmp_path):
  path = tmp_path / "journal.jsonl"
  policy = make_policy("greedy", num_drafts=2, debug_prob=1.0)  # would debug any buggy leaf it saw
  agent = AgentSpec("a", policy, AnalysingOperator(), analyze_every=2)
  report = run_ensemble([agent], Journal(path), EvaluationQueue(attention_fraction), Budgets(steps_per_agent=5))
  assert report.steps == {"a": 5}
  first = Journal.load(path)
  assert [n.operator for n in first.nodes if n.is_analysis] == ["analyze"] * 2
  failed, written = first.analyses()
  assert failed.is_buggy and failed.error == "ValueError: the reply is not JSON" and failed.tokens == 7
  assert not written.is_buggy and written.payload.startswith("analysis 2") and written.plan == "next: more attention"

  resumed = Journal.load(path)
  report = run_ensemble([agent], resumed, EvaluationQueue(attention_fraction), Budgets(steps_per_agent=9))
  journal = Journal.load(path)
  assert report.steps == {"a": 9} and len(journal) == 9 + 4
  assert "".join("A" if n.is_analysis else "s" for n in journal.nodes) == "ssAssAs" + "sAssAs"  # as if unbroken
  assert all(journal.get(n.parent_ids[0]).operator != "analyze" for n in journal.nodes if n.parent_ids)
  assert sum(n.tokens for n in journal.nodes) == 7 * 2 + 5 * 2  # analyses' tokens are counted


def test_analyses_need_an_operator_that_can_analyse():
  class ProposeOnly:
    def propose(self, action, journal, rng):
      return HeuristicOperator("AM", 8).propose(action, journal, rng)

  with pytest.raises(ValueError, match="agent p: analyze_every=4 but its operator ProposeOnly cannot analyse"):
    run_ensemble([AgentSpec("p", make_policy("greedy"), ProposeOnly(), analyze_every=4)], Journal(),
                 EvaluationQueue(attention_fraction), Budgets(steps_per_agent=1))
  with pytest.raises(ValueError, match="analyze_every must be >= 0"):
    AgentSpec("p", make_policy("greedy"), ProposeOnly(), analyze_every=-1)


def test_a_shared_tree_analyses_per_agent_and_seeds_no_analysis_into_the_queue():
  journal = Journal()
  agents = [AgentSpec(f"a{i}", make_policy("mcts"), HeuristicOperator("AM", 8), seed=i, analyze_every=2)
            for i in range(2)]
  run_ensemble(agents, journal, EvaluationQueue(attention_fraction, key=canonical), Budgets(steps_per_agent=5),
               shared_tree=True)
  for agent in ("a0", "a1"):
    mine = journal.by_agent(agent)
    assert "".join("A" if n.is_analysis else "s" for n in mine) == "ssAssAs"
    assert all(journal.get(n.parent_ids[0]).agent_id == agent for n in mine if n.is_analysis)
  queue = EvaluationQueue(attention_fraction, key=canonical)
  seed_queue_from_journal(queue, journal)  # what a resumed run does
  for node in journal.nodes:
    queue.evaluate(node.payload)
  assert queue.evaluations == len(journal.analyses())  # steps come from the cache; no analysis was put there
