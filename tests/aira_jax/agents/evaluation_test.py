"""Tests for the evaluation queue's blame rule: a ValueError is the candidate's fault (a cached buggy result);
any other exception is an infrastructure fault (retried, then InfrastructureError, never cached); Ctrl-C is
neither retried nor cached."""

import time

import pytest

from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.faults import InfrastructureError, Interrupted


class FakeEvaluator:
  """Counts calls per payload; raises `faults[payload]` (an exception, or a list consumed one per call)."""

  def __init__(self, faults=None, delay_s=0.0):
    self.faults, self.delay_s, self.calls = dict(faults or {}), delay_s, []

  def __call__(self, payload):
    self.calls.append(payload)
    time.sleep(self.delay_s)
    fault = self.faults.get(payload)
    if isinstance(fault, list):
      fault = fault.pop(0) if fault else None
    if fault is not None:
      raise fault
    return EvalResult(metric=float(len(payload)))


def test_a_value_error_is_the_candidates_fault_and_is_cached():
  evaluate = FakeEvaluator({"bad": ValueError("layout has 3 layers; exactly 4 are required")})
  queue = EvaluationQueue(evaluate, retry_pause_s=0)
  first, again = queue.evaluate("bad"), queue.evaluate("bad")
  assert first.is_buggy and first.error == "ValueError: layout has 3 layers; exactly 4 are required"
  assert again.cached and again.is_buggy
  assert evaluate.calls == ["bad"]  # not retried, not evaluated again


def test_an_infrastructure_fault_is_retried_then_raised_and_never_cached():
  evaluate = FakeEvaluator({"AMAM": RuntimeError("device lost")})
  queue = EvaluationQueue(evaluate, retries=2, retry_pause_s=0)
  with pytest.raises(InfrastructureError, match=r"RuntimeError: device lost \(failed 3 times\)") as info:
    queue.evaluate("AMAM")
  assert isinstance(info.value.__cause__, RuntimeError)
  assert evaluate.calls == ["AMAM"] * 3
  evaluate.faults.clear()  # the device is back: the payload is evaluated again, not answered from a cache
  result = queue.evaluate("AMAM")
  assert not result.is_buggy and not result.cached and result.metric == 4.0
  assert evaluate.calls == ["AMAM"] * 4
  assert queue.evaluate("AMAM").cached  # a real result is cached


def test_a_transient_fault_costs_one_retry():
  evaluate = FakeEvaluator({"AM": [OSError("store is locked")]})
  result = EvaluationQueue(evaluate, retry_pause_s=0).evaluate("AM")
  assert result.metric == 2.0 and evaluate.calls == ["AM", "AM"]


def test_duplicates_waiting_on_a_failed_evaluation_get_its_error():
  evaluate = FakeEvaluator({"AM": RuntimeError("evaluator bug")}, delay_s=0.05)
  queue = EvaluationQueue(evaluate, workers=2, retries=0, retry_pause_s=0)
  futures = [queue.submit("AM") for _ in range(3)]
  for future in futures:
    with pytest.raises(InfrastructureError, match="evaluator bug"):
      future.result(timeout=10)  # a waiting duplicate must not hang
  assert evaluate.calls == ["AM"]


def test_an_interrupt_is_not_retried_and_not_cached():
  evaluate = FakeEvaluator({"AM": [Interrupted("stopped by Ctrl-C")]})
  queue = EvaluationQueue(evaluate, retry_pause_s=0)
  with pytest.raises(Interrupted):
    queue.evaluate("AM")
  assert evaluate.calls == ["AM"]
  assert queue.evaluate("AM").metric == 2.0 and evaluate.calls == ["AM", "AM"]


def test_retries_pause_between_tries():
  evaluate = FakeEvaluator({"AM": [RuntimeError("flaky"), None]})
  started = time.monotonic()
  EvaluationQueue(evaluate, retry_pause_s=0.2).evaluate("AM")
  assert time.monotonic() - started >= 0.2 and evaluate.calls == ["AM", "AM"]
