"""Evaluations run in parallel on different devices and give the same scores as one after another."""

import jax

from aira_jax.agents import EvaluationQueue
from aira_jax.compose.config import EvaluatorConfig
from aira_jax.compose.evaluator import LayoutEvaluator

TINY = EvaluatorConfig(mad_tasks=("in_context_recall",), steps=3, batch_size=4, eval_examples=8,
                       model={"d_model": 16, "num_heads": 2, "ffn_dim": 32, "ssm_head_dim": 8})
LAYOUTS = ["AAMM", "AMAM", "MMAA", "AMMA"]


def test_two_workers_use_two_devices_and_match_sequential_scores():
  finished = []
  evaluator = LayoutEvaluator(TINY, space="AM", depth=4, devices=jax.devices()[:2], on_evaluation=finished.append)
  queue = EvaluationQueue(evaluator, workers=2, key=evaluator.key)
  parallel = {layout: queue.submit(layout) for layout in LAYOUTS}
  parallel = {layout: future.result() for layout, future in parallel.items()}
  queue.shutdown()
  assert all(not result.is_buggy for result in parallel.values())
  assert {e.device for e in finished} == {str(d) for d in jax.devices()[:2]}
  assert evaluator.running == 0 and evaluator.done == len(LAYOUTS)
  for layout in LAYOUTS:  # again, one at a time: the scores do not depend on the device or on concurrency
    assert evaluator.evaluate(layout).metric == parallel[layout].metric
