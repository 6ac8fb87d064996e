"""The AIRA-Design search: agents write candidate files, the sandbox scores them, everything lands in the run.

`run_design(config, files)` builds the task, the sandboxed `CandidateEvaluator` and the agents (the built-in
seed-variation agent, or `CodeLLMOperator` with a logged LLM client; each writes an analysis of its results every
`search.analyze_every` steps, an "analyze" node that is never evaluated), then runs the shared search session
(aira_jax.agents.session): journal, store, de-duplicated evaluation queue, progress, resume. Every finished
candidate is recorded in the store at once with its stages and metrics, and its files are kept under
`candidates/<key>/`; a resumed run answers known candidates from there.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import IO

from aira_jax.agents import AgentSpec, Budgets, EnsembleReport, EvalResult, make_policy
from aira_jax.agents.journal import Node
from aira_jax.agents.session import SearchProgress, distinct_best, fault_meta, run_session
from aira_jax.design.code_operator import CodeLLMOperator
from aira_jax.design.config import ConfigError, DesignConfig
from aira_jax.design.evaluator import CandidateResult, code_key
from aira_jax.design.heuristic import SeedVariationOperator, seed_name
from aira_jax.design.remote import candidate_evaluator
from aira_jax.design.bubblewrap import bwrap_problem, gpu_devices
from aira_jax.design.sandbox import SandboxLimits, SandboxUnavailable, describe_isolation, resolve_isolation
from aira_jax.design.tasks import DesignTask, make_design_task
from aira_jax.results.run_files import RunFiles
from aira_jax.results.store import ResultStore


@dataclasses.dataclass(frozen=True)
class DesignResult:
  """What the search found: the best nodes (best first) with their final metric, counts, the ensemble report."""

  task: str
  metric: str
  lower_is_better: bool
  best: tuple[Node, ...]
  final_metrics: dict[str, float | None]
  nodes: int
  evaluations_run: int
  ensemble: EnsembleReport
  seconds: float


def build_task(config: DesignConfig) -> DesignTask:
  """The configured design task; ConfigError naming what is wrong."""
  try:
    return make_design_task(config.search.task, **dict(config.search.task_options))
  except (ValueError, TypeError, OSError) as e:
    raise ConfigError(f"search.task {config.search.task!r}: {e}") from None


def sandbox_isolation(config: DesignConfig) -> str:
  """The configured sandbox isolation as it will run here; ConfigError when bwrap is asked for and unusable."""
  try:
    return resolve_isolation(config.sandbox.isolation)
  except SandboxUnavailable as e:
    raise ConfigError(f"{e}; set sandbox.isolation=auto or process to run without it") from None


def make_agents(config: DesignConfig, task: DesignTask, files: RunFiles) -> list[AgentSpec]:
  """One AgentSpec per configured agent."""
  from aira_jax.llm import make_client
  agents = []
  for number, agent in enumerate(config.search.agents):
    if agent.llm is None:
      operator = SeedVariationOperator(task.seed_sources(), lower_is_better=task.lower_is_better)
    else:
      client = make_client(agent.llm, log=files.llm_log, options=agent.llm_options)
      operator = CodeLLMOperator(client, task, edits=agent.edits)
    agents.append(AgentSpec(agent.name, make_policy(agent.policy, **dict(agent.policy_options)), operator,
                             seed=config.seed + number, analyze_every=config.search.analyze_every))
  return agents


def record_result(store: ResultStore, task: DesignTask):
  """The evaluator callback that writes each finished candidate to the store."""
  def record(result: CandidateResult) -> None:
    metric = result.metrics.get(task.metric) if result.failed_stage is None else None
    store.add_evaluation(result.key, task=task.name, metric=metric, is_buggy=result.failed_stage is not None,
                         error=result.error, seconds=result.seconds,
                         details={"stages": result.stages, "metrics": result.metrics, "reported": result.reported,
                                  "failed_stage": result.failed_stage, "killed": result.killed,
                                  "isolation": result.isolation})
  return record


def known_candidates(store: ResultStore, files: RunFiles, task: DesignTask) -> list[tuple[str, EvalResult]]:
  """(code, result) of every candidate the store holds whose file was kept, for the queue's cache."""
  known = []
  for row in store.evaluations(task=task.name):
    path = files.candidates / row.key / task.filename
    if path.is_file():
      known.append((path.read_text(), EvalResult(metric=row.metric, is_buggy=row.is_buggy, error=row.error)))
  return known


def run_design(config: DesignConfig, files: RunFiles, *, stream: IO[str] | None = None) -> DesignResult:
  """Runs (or resumes) the design search in `files.root`; see the module docstring."""
  stream = stream or sys.stderr
  started = time.monotonic()
  task = build_task(config)
  search = config.search
  limits = SandboxLimits(timeout_s=config.sandbox.timeout_s or task.timeout_s, memory_mb=config.sandbox.memory_mb)
  if config.executor.backend == "local":
    isolation = sandbox_isolation(config)
    block = config.sandbox.block_processes if config.sandbox.block_processes is not None else not gpu_devices()
    print(f"design: sandbox {describe_isolation(isolation, block)}", file=stream, flush=True)
    if isolation == "process" and config.sandbox.isolation == "auto":
      print(f"design: WARNING bwrap is not used because {bwrap_problem()}", file=stream, flush=True)
  else:
    isolation = "bwrap"  # on the workers (aira_jax.design.remote)
  with ResultStore(files.store) as store, candidate_evaluator(
      config, task, limits, isolation=isolation, candidates_dir=files.candidates,
      on_result=record_result(store, task), stream=stream) as evaluator:
    agents = make_agents(config, task, files)
    total = search.steps_per_agent * len(agents) if search.steps_per_agent else None
    progress = SearchProgress(total, lambda: f"candidates run {evaluator.done}", stream,
                              show=lambda code: f"{seed_name(code) or 'code'} {code_key(code)}")
    workers = evaluator.pool.size if config.executor.backend == "ray" else search.workers
    print(f"design: {len(agents)} agents on {task.name} ({task.filename}, {task.metric}) in {files.root}; sandbox "
          f"timeout {limits.timeout_s:.0f} s, {workers} worker(s)", file=stream, flush=True)
    budgets = Budgets(wall_clock_s=search.wall_clock_s, steps_per_agent=search.steps_per_agent,
                      max_tokens=search.max_llm_tokens)
    report, journal = run_session(agents, evaluator, journal_path=files.journal, store=store, key=code_key,
                                  budgets=budgets, lower_is_better=task.lower_is_better, workers=workers,
                                  shared_tree=search.shared_tree, known=known_candidates(store, files, task),
                                  progress=progress)
    best = distinct_best(journal, 10)
    final = {}
    if task.final_metric is not None:
      for node in best:
        rows = store.evaluations(code_key(node.payload), task=task.name)
        final[node.id] = rows[-1].details.get("metrics", {}).get(task.final_metric) if rows else None
    store.set_meta("design", {"isolation": isolation, "executor": evaluator.where(), "task": task.name,
                              "metric": task.metric,
                              "lower_is_better": task.lower_is_better,
                              "final_metric": task.final_metric, "filename": task.filename,
                              "interrupted": report.interrupted, "stop_reasons": report.stop_reasons,
                              **fault_meta(report)})
  return DesignResult(task=task.name, metric=task.metric, lower_is_better=task.lower_is_better, best=tuple(best),
                      final_metrics=final, nodes=len(journal), evaluations_run=report.evaluations, ensemble=report,
                      seconds=time.monotonic() - started)
