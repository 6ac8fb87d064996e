"""Compose on Ray (aira_jax.compose.remote) against the local backend, on a private Ray instance: the same
layout and seed give bit-identical metrics, each worker compiles once per task, a worker killed mid-evaluation
costs a retry and records the evaluation once, and a whole tiny run (search, race, scale) gives the local
run's journal, standings and training losses."""

import concurrent.futures
import os
import signal
import time

import pytest
from ray_testing import COMPOSE_TINY, RAY

from aira_jax.agents.evaluation import EvaluationQueue
from aira_jax.agents.journal import Journal
from aira_jax.compose.cli import main
from aira_jax.compose.config import EvaluatorConfig
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.compose.remote import LayoutWorker, RayLayoutEvaluator
from aira_jax.executor import ExecutorConfig
from aira_jax.executor.ray_pool import WorkerPool
from aira_jax.results.store import ResultStore

TINY = EvaluatorConfig(**COMPOSE_TINY)
LAYOUTS = ["AAMM", "MAMA", "MMMM"]


@pytest.fixture
def ray_evaluator(ray_local):
  recorded = []
  pool = WorkerPool(LayoutWorker, (TINY, "AM", 4), size=2, config=ExecutorConfig(backend="ray"))
  yield RayLayoutEvaluator(TINY, space="AM", depth=4, pool=pool, on_evaluation=recorded.append), recorded
  pool.close()


@RAY
def test_ray_evaluations_are_bit_identical_to_local_and_compile_once_per_worker(ray_evaluator):
  remote, recorded = ray_evaluator
  local = LayoutEvaluator(TINY, space="AM", depth=4)
  pairs = [(layout, seed) for seed in (0, 3) for layout in LAYOUTS]
  with concurrent.futures.ThreadPoolExecutor(2) as threads:
    far = list(threads.map(lambda pair: remote.evaluate(*pair), pairs))
  for (layout, seed), evaluation in zip(pairs, far):
    here = local.evaluate(layout, seed)
    assert (evaluation.metric, evaluation.per_task) == (here.metric, here.per_task), (layout, seed)
    assert evaluation.device.startswith("node ")
  assert len({e.metric for e in far}) > 1  # not all the same constant
  assert sorted((e.layout, e.seed) for e in recorded) == sorted(pairs)  # recorded in the driver, once each
  assert sum(e.compile_seconds > 0 for e in far) <= 2  # one switch program per worker, reused for every layout
  assert (remote.done, remote.running) == (len(pairs), 0)


@RAY
def test_a_worker_killed_mid_evaluation_costs_a_retry_and_no_result(ray_evaluator):
  remote, recorded = ray_evaluator
  queue = EvaluationQueue(remote, workers=2, key=remote.key, retry_pause_s=0.1)
  future = queue.submit("AMAM")
  deadline = time.monotonic() + 60
  while not remote.pool.busy_workers():
    assert time.monotonic() < deadline
    time.sleep(0.05)
  (busy,) = remote.pool.busy_workers()
  os.kill(busy["pid"], signal.SIGKILL)
  result = future.result(timeout=120)
  queue.shutdown()
  here = LayoutEvaluator(TINY, space="AM", depth=4).evaluate("AMAM")
  assert not result.is_buggy and result.metric == here.metric
  assert remote.pool.worker_losses == 1
  assert [(e.layout, e.metric) for e in recorded] == [("AMAM", here.metric)]  # recorded once, by the retry


# One agent and (below) one worker: the agents' threads would otherwise order their steps by timing.
CLI_TINY = [
    "search.depth=4", "search.agents=[greedy]", "search.steps_per_agent=3", "search.race_repeats=2",
    "search.race_top=2",
    "evaluator.task=mad-lite", "evaluator.mad_tasks=[in_context_recall]", "evaluator.steps=3",
    "evaluator.batch_size=4", "evaluator.eval_examples=16",
    "evaluator.model={d_model: 16, num_heads: 2, ffn_dim: 32, ssm_head_dim: 8}",
    "scale.target_depth=6", "scale.widths=[8,16,24]", "scale.budgets=[2e7,4e7]", "scale.seq_len=16",
    "scale.batch_size=4", "scale.min_steps=1", "scale.eval_tokens=256", "scale.bootstrap=20",
    "scale.baselines=[llama]",
]


def _outcome(run):
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    evaluations = {(row.key, row.seed): row.metric for row in store.evaluations()}
    devices = [row.details["device"] for row in store.evaluations()]
    runs = {(row.family, row.budget_flops, row.params): row.loss for row in store.training_runs()}
    race = store.get_meta("race")
  nodes = [(n.payload, n.metric, n.operator) for n in Journal.load(run / "journal.jsonl").nodes]
  return {"evaluations": evaluations, "runs": runs, "race": race, "nodes": nodes}, devices


@RAY
def test_a_tiny_compose_run_on_ray_matches_the_local_run(ray_local, tmp_path):
  corpus = tmp_path / "corpus.txt"
  words = "the quick brown fox jumps over the lazy dog and then runs far away into the woods".split()
  corpus.write_text("\n\n".join(f"paragraph {i}: " + " ".join(words[(i * j) % len(words)] for j in range(40))
                                for i in range(120)))
  common = ["--quiet", f"run_dir={tmp_path}", *CLI_TINY, f"scale.task_options={{path: {corpus}}}"]
  assert main(["run", "run_id=local", *common]) == 0
  # One worker, so the agent sees results in the same order as from the local run's one evaluation thread.
  assert main(["run", "run_id=ray", *common, "executor.backend=ray", "executor.max_concurrent=1"]) == 0
  local, _ = _outcome(tmp_path / "local")
  remote, devices = _outcome(tmp_path / "ray")
  assert remote == local
  assert len(local["evaluations"]) >= 3 and len(local["runs"]) == 12 and len(local["race"]) == 2
  assert all(device.startswith("node ") for device in devices)
