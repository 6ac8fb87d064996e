"""Stage 1 of compose: an ensemble of agents proposes layouts, the evaluator trains and scores each one.

`run_search(config, files)` wires the harness (aira_jax.agents) to the compose evaluator: agents are the
built-in heuristic operator or `LayoutLLMOperator` with an LLM client, under the configured policies, each
writing an analysis of its results every `search.analyze_every` steps (an "analyze" node, never evaluated); one
`EvaluationQueue` de-duplicates layouts by canonical text; every node goes to the journal and the store, every
finished evaluation to the store at once (before its node is written), so a run killed at any point and resumed
loses no finished evaluation and repeats none: the queue is seeded from the journal and from the store.

After the search the best `race_top` layouts are raced (racing.py): re-evaluated with further seeds, common
random numbers across layouts, until paired t intervals separate them from the leader or `race_repeats`
seeds are spent. The standings (mean, interval, repeats, best / tied / worse) go to the store's "race" meta
and the report; the spread of their scores over seeds is the noise floor the report states. The journal
keeps what the agents saw: one score per layout, from the search's own seed.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from typing import IO

from aira_jax.agents import AgentSpec, Budgets, EnsembleReport, EvalResult, make_policy
from aira_jax.agents.journal import Node
from aira_jax.agents.session import SearchProgress, distinct_best, fault_meta, run_session
from aira_jax.compose.config import ComposeConfig
from aira_jax.compose.evaluator import Evaluation, LayoutEvaluator
from aira_jax.compose.heuristic import HeuristicOperator
from aira_jax.compose.llm_operator import LayoutLLMOperator
from aira_jax.compose.racing import Standing, race
from aira_jax.compose.remote import layout_evaluator
from aira_jax.faults import retry_infrastructure
from aira_jax.results.run_files import RunFiles
from aira_jax.results.store import ResultStore


@dataclasses.dataclass(frozen=True)
class NoiseFloor:
  """Scores of layouts evaluated with several seeds: layout -> scores; `pooled_std` is the square root of the
  mean within-layout variance (None with fewer than two seeds for every layout)."""

  scores: dict[str, list[float]]
  pooled_std: float | None

  @classmethod
  def from_scores(cls, scores: dict[str, list[float]]) -> NoiseFloor:
    repeated = {k: v for k, v in scores.items() if len(v) >= 2}
    pooled = statistics.fmean(statistics.variance(v) for v in repeated.values()) ** 0.5 if repeated else None
    return cls(scores=repeated, pooled_std=pooled)


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """What stage 1 found: the best nodes (best first), counts, the noise floor, the ensemble's report."""

  metric_name: str
  lower_is_better: bool
  best: tuple[Node, ...]
  nodes: int
  evaluations_run: int
  noise: NoiseFloor
  standings: tuple[Standing, ...]
  ensemble: EnsembleReport
  seconds: float


def describe_task(evaluator: LayoutEvaluator) -> str:
  """The proxy task as the LLM agents read it."""
  config = evaluator.config
  direction = "lower is better" if evaluator.lower_is_better else "higher is better"
  if config.task == "mad-lite":
    what = (f"MAD-lite synthetic tasks ({', '.join(evaluator.tasks)}); fitness = mean validation accuracy over "
            "them (MAD score)")
  else:
    what = f"{config.task}; fitness = validation {evaluator.metric_name}"
  width = evaluator.base_config.d_model
  return (f"{what}, {direction}. Each layout is trained from scratch at width {width} for {config.steps} steps of "
          f"{config.batch_size} sequences.")


def make_agents(config: ComposeConfig, evaluator: LayoutEvaluator, files: RunFiles) -> list[AgentSpec]:
  """One AgentSpec per configured agent: heuristic operator, or the LLM operator with a logged client."""
  from aira_jax.llm import make_client
  search = config.search
  agents = []
  for number, agent in enumerate(search.agents):
    if agent.llm is None:
      operator = HeuristicOperator(search.space, search.depth)
    else:
      client = make_client(agent.llm, log=files.llm_log, options=agent.llm_options)
      operator = LayoutLLMOperator(client, space=search.space, depth=search.depth,
                                   task_description=describe_task(evaluator), metric_name=evaluator.metric_name,
                                   lower_is_better=evaluator.lower_is_better)
    agents.append(AgentSpec(agent.name, make_policy(agent.policy, **dict(agent.policy_options)), operator,
                             seed=config.seed + number, analyze_every=search.analyze_every))
  return agents


def known_results(store: ResultStore, task: str, seed: int) -> list[tuple[str, EvalResult]]:
  """Evaluations the store holds for this task and the search's own seed (noise repeats use other seeds)."""
  return [(row.key, EvalResult(metric=row.metric, is_buggy=row.is_buggy, error=row.error,
                               output=row.details.get("summary", "")))
          for row in store.evaluations(task=task) if row.seed == seed]


def race_top_layouts(evaluator: LayoutEvaluator, store: ResultStore, layouts: list[str], seeds: list[int], *,
                     min_repeats: int, confidence: float, stream: IO[str], workers: int = 1) -> list[Standing]:
  """Races `layouts` over `seeds` (racing.py), reusing every evaluation the store holds for a (layout, seed);
  a round's evaluations run `workers` at a time."""
  task = evaluator.config.task

  def evaluate(layout: str, seed: int) -> float | None:
    done = {row.seed: row for row in store.evaluations(layout, task=task)}
    if seed in done:
      return done[seed].metric
    evaluation = retry_infrastructure(lambda: evaluator.evaluate(layout, seed))
    print(f"race: {evaluation.summary()} (seed {seed})", file=stream, flush=True)
    return evaluation.metric

  def on_round(number: int, alive: list[str]) -> None:
    print(f"race: after {number} seed(s), {len(alive)} of {len(layouts)} contenders still in the race",
          file=stream, flush=True)

  standings = race(evaluate, layouts, seeds, lower_is_better=evaluator.lower_is_better, min_repeats=min_repeats,
                   confidence=confidence, on_round=on_round, workers=workers)
  for standing in standings:
    low, high = standing.interval
    print(f"race: {standing.status:6s} {standing.layout}: mean {standing.mean:.4f} "
          f"[{low:.4f}, {high:.4f}] over {standing.repeats} seed(s)", file=stream, flush=True)
  return standings


def record_evaluation(store: ResultStore, task: str):
  """The evaluator callback that writes each finished evaluation to the store."""
  def record(evaluation: Evaluation) -> None:
    store.add_evaluation(evaluation.layout, task=task, metric=evaluation.metric, seed=evaluation.seed,
                         is_buggy=evaluation.is_buggy, error=evaluation.error, seconds=evaluation.seconds,
                         compile_seconds=evaluation.compile_seconds,
                         details={"per_task": evaluation.per_task, "summary": evaluation.summary(),
                                  "device": evaluation.device})
  return record


def run_search(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> SearchResult:
  """Runs (or resumes) stage 1 in `files.root`; see the module docstring."""
  stream = stream or sys.stderr
  search = config.search
  started = time.monotonic()
  with ResultStore(files.store) as store, layout_evaluator(
      config, on_evaluation=record_evaluation(store, config.evaluator.task), stream=stream) as evaluator:
    workers = search.workers or evaluator.default_workers()
    agents = make_agents(config, evaluator, files)
    total = search.steps_per_agent * len(agents) if search.steps_per_agent else None
    progress = SearchProgress(
        total, lambda: f"evaluations {evaluator.done} done, {evaluator.running} running", stream)
    print(f"search: {len(agents)} agents over {search.space} at depth {search.depth} in {files.root}; evaluator "
          f"{evaluator.mode} on {config.evaluator.task}, {workers} worker(s)", file=stream, flush=True)
    budgets = Budgets(wall_clock_s=search.wall_clock_s, steps_per_agent=search.steps_per_agent,
                      max_tokens=search.max_llm_tokens)
    report, journal = run_session(agents, evaluator, journal_path=files.journal, store=store, key=evaluator.key,
                                  budgets=budgets, lower_is_better=evaluator.lower_is_better, workers=workers,
                                  shared_tree=search.shared_tree,
                                  known=known_results(store, config.evaluator.task, config.evaluator.seed),
                                  progress=progress)
    standings: list[Standing] = []
    if not report.interrupted and search.race_repeats > 1 and search.race_top > 1:
      top = [node.payload for node in distinct_best(journal, search.race_top)]
      seeds = [config.evaluator.seed + k for k in range(search.race_repeats)]
      print(f"race: {len(top)} contenders, up to {len(seeds)} seeds each (common random numbers; paired "
            f"{round(100 * search.race_confidence)}% t intervals)", file=stream, flush=True)
      standings = race_top_layouts(evaluator, store, top, seeds, min_repeats=min(3, len(seeds)),
                                   confidence=search.race_confidence, stream=stream, workers=workers)
      store.set_meta("race", [standing.to_dict() for standing in standings])
    noise = NoiseFloor.from_scores({s.layout: list(s.scores.values()) for s in standings})
    store.set_meta("search", {"interrupted": report.interrupted, "stop_reasons": report.stop_reasons,
                              "metric": evaluator.metric_name, "lower_is_better": evaluator.lower_is_better,
                              "noise_pooled_std": noise.pooled_std, "mode": evaluator.mode, "executor": evaluator.where(),
                              **fault_meta(report)})
    return SearchResult(metric_name=evaluator.metric_name, lower_is_better=evaluator.lower_is_better,
                        best=tuple(distinct_best(journal, 10)), nodes=len(journal),
                        evaluations_run=report.evaluations, noise=noise, standings=tuple(standings),
                        ensemble=report,
                        seconds=time.monotonic() - started)
