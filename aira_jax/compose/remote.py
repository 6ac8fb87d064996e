"""Compose on the configured executor: the search's evaluator and the scale stage's training runs, here or on Ray.

`layout_evaluator(config, ...)` and `point_runner(config, ...)` are context managers the two stages open:

- `executor.backend: local`: the `LayoutEvaluator` of this process, and the scale stage's runs one after the
  other on this process's devices (what compose always did);
- `ray`: a pool of Ray actors (aira_jax.executor.ray_pool). A `LayoutWorker` holds its own `LayoutEvaluator`,
  so its programs compile once per actor and task, not per layout; a `ScaleWorker` holds the scale stage's
  `_PointTrainer` (one program per width in switch mode). The driver keeps the agents, journal, store and LLM
  calls: it parses a layout, sends its text and seed, and records the `Evaluation` that comes back, so a
  worker lost mid-evaluation (`WorkerLost`, retried on another worker) records nothing. The same layout with
  the same seed trains on the same batches from the same initialisation on either backend (bit-identical on
  CPU: tests/aira_jax/compose/ray_executor_test.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import IO

from aira_jax.compose.config import ComposeConfig, EvaluatorConfig
from aira_jax.compose.evaluator import Evaluation, LayoutEvaluator
from aira_jax.executor.ray_pool import RemoteWorker, WorkerPool, map_unordered, worker_pool
from aira_jax.faults import retry_infrastructure
from aira_jax.layout import Layout
from aira_jax.model_config import ModelConfig


class LayoutWorker(RemoteWorker):
  """A Ray actor evaluating layouts with its own `LayoutEvaluator` (its programs stay compiled)."""

  def __init__(self, config: EvaluatorConfig, space: str, depth: int):
    self.evaluator = LayoutEvaluator(config, space=space, depth=depth)
    self.node = self.where()["node"][:8]

  def evaluate(self, text: str, seed: int) -> Evaluation:
    evaluation = self.evaluator.evaluate(text, seed)
    return dataclasses.replace(evaluation, device=f"node {self.node} {evaluation.device}")


class RayLayoutEvaluator(LayoutEvaluator):
  """A `LayoutEvaluator` whose training happens on the workers of `pool` (`LayoutWorker`s); parsing, keys,
  counters and the `on_evaluation` record stay in this process."""

  def __init__(self, config: EvaluatorConfig, *, space: str, depth: int, pool: WorkerPool,
               on_evaluation: Callable[[Evaluation], None] | None = None):
    super().__init__(config, space=space, depth=depth, on_evaluation=on_evaluation)
    self.pool = pool

  def default_workers(self) -> int:
    return self.pool.size

  def where(self) -> str:
    return self.pool.describe()

  def _run(self, layout: Layout, seed: int) -> Evaluation:
    return self.pool.call("evaluate", layout.text, seed)


@contextlib.contextmanager
def layout_evaluator(config: ComposeConfig, *, on_evaluation: Callable[[Evaluation], None] | None,
                     stream: IO[str]) -> Iterator[LayoutEvaluator]:
  """The search's evaluator on the configured executor (module docstring)."""
  search = config.search
  if config.executor.backend == "local":
    yield LayoutEvaluator(config.evaluator, space=search.space, depth=search.depth, on_evaluation=on_evaluation)
    return
  with worker_pool(config.executor, LayoutWorker, (config.evaluator, search.space, search.depth),
                   what="evaluations", stream=stream) as pool:
    yield RayLayoutEvaluator(config.evaluator, space=search.space, depth=search.depth, pool=pool,
                             on_evaluation=on_evaluation)


@dataclasses.dataclass(frozen=True)
class PointJob:
  """One training run of the scale stage: a family's layout at one width, budget and token count."""

  family: str
  layout: Layout
  model_config: ModelConfig
  tokens: int
  seed: int
  analytic_flops_per_token: float | None
  label: str  # for progress lines


class ScaleWorker(RemoteWorker):
  """A Ray actor training scale-stage points with its own `_PointTrainer` (one program per width in switch
  mode, kept across points)."""

  def __init__(self, config: ComposeConfig, space: str):
    from aira_jax.compose.scale import _PointTrainer, scale_task
    self.trainer = _PointTrainer(config, scale_task(config), space)

  def train(self, job: PointJob) -> dict:
    return self.trainer.train(job.layout, job.model_config, job.tokens, job.seed, job.analytic_flops_per_token)


PointRunner = Callable[[list[PointJob]], Iterator[tuple[PointJob, dict, float]]]


@contextlib.contextmanager
def point_runner(config: ComposeConfig, task, space: str, stream: IO[str]) -> Iterator[PointRunner]:
  """A function that trains scale-stage jobs and yields (job, scores, seconds) as each finishes: one after
  the other here (local), or `executor`'s workers at a time on Ray. A run that raises (not a divergence) is
  tried twice more, then InfrastructureError."""
  if config.executor.backend == "local":
    from aira_jax.compose.scale import _PointTrainer
    trainer = _PointTrainer(config, task, space)

    def run_here(jobs: list[PointJob]):
      for job in jobs:
        started = time.perf_counter()
        scores = retry_infrastructure(lambda: trainer.train(job.layout, job.model_config, job.tokens, job.seed,
                                                            job.analytic_flops_per_token), candidate_errors=())
        yield job, scores, time.perf_counter() - started
    yield run_here
    return

  with worker_pool(config.executor, ScaleWorker, (config, space), what="training runs", stream=stream) as pool:
    def timed(job: PointJob) -> tuple[dict, float]:
      started = time.perf_counter()
      scores = retry_infrastructure(lambda: pool.call("train", job), candidate_errors=())
      return scores, time.perf_counter() - started

    def run_on_ray(jobs: list[PointJob]):
      for job, (scores, seconds) in map_unordered(timed, jobs, pool.size):
        yield job, scores, seconds
    yield run_on_ray
