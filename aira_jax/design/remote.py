"""Design on the configured executor: each candidate's sandboxed run and trusted scoring, here or on Ray.

`candidate_evaluator(config, task, ...)` is the context manager `run_design` opens:

- `executor.backend: local`: the `CandidateEvaluator` of this process (the sandbox runs as its child);
- `ray`: a pool of `CandidateWorker` actors (aira_jax.executor.ray_pool). Each builds the task and its trusted
  scorer on its own node (training data and evaluation inputs for the sandbox, held-out labels in the worker's
  process), and runs candidates there under bubblewrap, exactly as locally: the candidate's file travels with
  the call, and the result with the files kept of it (its code, stdout, stderr, stage records, result) comes
  back to the driver, which writes them under `candidates/<key>/` and records the result in the store. A
  candidate on Ray always runs under bwrap (`sandbox.isolation=process` is refused by the config): outside
  its own network namespace it could reach the cluster and run code as the trusted side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO

from aira_jax.design.config import DesignConfig
from aira_jax.design.evaluator import CandidateEvaluator, CandidateResult
from aira_jax.design.sandbox import SandboxLimits
from aira_jax.design.tasks import DesignTask, make_design_task
from aira_jax.executor.ray_pool import RemoteWorker, WorkerPool, worker_pool


class CandidateWorker(RemoteWorker):
  """A Ray actor that runs candidates of the task in its node's sandbox and scores them (module docstring)."""

  def __init__(self, task_name: str, task_options: dict, limits: SandboxLimits, keep_workdirs: bool,
               block_processes: bool | None):
    task = make_design_task(task_name, **task_options)
    self.evaluator = CandidateEvaluator(task, limits, isolation="bwrap", keep_workdirs=keep_workdirs,
                                        block_processes=block_processes)

  def score(self, code: str) -> tuple[CandidateResult, dict[str, str]]:
    return self.evaluator.score(code)


class RayCandidateEvaluator(CandidateEvaluator):
  """A `CandidateEvaluator` whose sandboxed runs and scoring happen on the workers of `pool`; the kept files
  and the `on_result` record are written in this process."""

  def __init__(self, task: DesignTask, limits: SandboxLimits, *, pool: WorkerPool, candidates_dir,
               on_result: Callable[[CandidateResult], None] | None = None):
    super().__init__(task, limits, isolation="process", candidates_dir=candidates_dir, on_result=on_result)
    self.isolation = "bwrap"  # what the workers use (CandidateWorker); this process runs no candidate
    self.pool = pool

  def score(self, code: str) -> tuple[CandidateResult, dict[str, str]]:
    return self.pool.call("score", code)

  def where(self) -> str:
    return self.pool.describe()


@contextlib.contextmanager
def candidate_evaluator(config: DesignConfig, task: DesignTask, limits: SandboxLimits, *, isolation: str,
                        candidates_dir, on_result: Callable[[CandidateResult], None],
                        stream: IO[str]) -> Iterator[CandidateEvaluator]:
  """The design evaluator on the configured executor (module docstring); closed on exit."""
  sandbox, executor = config.sandbox, config.executor
  if executor.backend == "local":
    with contextlib.closing(CandidateEvaluator(
        task, limits, isolation=isolation, candidates_dir=candidates_dir, on_result=on_result,
        keep_workdirs=sandbox.keep_workdirs, block_processes=sandbox.block_processes)) as evaluator:
      yield evaluator
    return
  args = (config.search.task, dict(config.search.task_options), limits, sandbox.keep_workdirs,
          sandbox.block_processes)
  with worker_pool(executor, CandidateWorker, args, what="candidates (sandboxed with bwrap on their nodes)",
                   stream=stream) as pool:
    yield RayCandidateEvaluator(task, limits, pool=pool, candidates_dir=candidates_dir, on_result=on_result)
