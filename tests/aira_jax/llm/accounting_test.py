"""Token budget, call log and concurrency limit, through AccountedClient."""

import asyncio
import threading
import time

import pytest

from aira_jax.llm import (AccountedClient, CallLog, ConcurrencyLimit, Completion, LLMBudgetExceeded, LLMResponseError,
                          ScriptedClient, TokenBudget, Usage)

SCHEMA = {"type": "object", "required": ["layout"], "properties": {"layout": {"type": "string"}}}


def test_budget_is_charged_and_refuses_before_the_next_call():
  inner = ScriptedClient(["x" * 40], cycle=True)  # 1 prompt token + 10 completion tokens a call
  client = AccountedClient(inner, budget=TokenBudget(20))
  client.generate("abcd")
  assert client.budget.used == 11 and client.budget.remaining == 9
  client.generate("abcd")  # 11 <= 20: allowed, overshoots to 22
  with pytest.raises(LLMBudgetExceeded, match="22 of 20"):
    client.generate("abcd")
  assert len(inner.calls) == 2  # the refused call never reached the backend


def test_budget_charges_replies_that_failed_validation():
  client = AccountedClient(ScriptedClient(["not json"]), budget=TokenBudget(100))
  with pytest.raises(LLMResponseError):
    client.generate("abcd", schema=SCHEMA)
  assert client.budget.used == 3


def test_budget_is_thread_safe():
  budget = TokenBudget(10**9)
  threads = [threading.Thread(target=lambda: [budget.charge(Usage(0, 1, 1)) for _ in range(1000)]) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert budget.used == 8000


def test_call_log_lines(tmp_path):
  log = CallLog(tmp_path / "run" / "llm_calls.jsonl")
  client = AccountedClient(ScriptedClient(['{"layout": "AM"}', '{"layout": 3}']), log=log)
  client.generate([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], schema=SCHEMA)
  with pytest.raises(LLMResponseError):
    client.generate("again", schema=SCHEMA)
  ok, failed = log.entries()
  assert ok["model"] == "scripted" and ok["messages"] == [{"role": "system", "content": "s"},
                                                          {"role": "user", "content": "u"}]
  assert ok["text"] == '{"layout": "AM"}' and ok["usage"]["total_tokens"] > 0 and ok["latency_s"] >= 0
  assert ok["schema"] == SCHEMA and "error" not in ok
  assert failed["error"].startswith("LLMResponseError") and failed["text"] == '{"layout": 3}'


class SlowClient:
  """Counts calls in flight; each call sleeps briefly."""

  model = "slow"

  def __init__(self):
    self.in_flight = 0
    self.max_in_flight = 0
    self._lock = threading.Lock()

  def generate(self, messages, **kwargs):
    with self._lock:
      self.in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self.in_flight)
    time.sleep(0.02)
    with self._lock:
      self.in_flight -= 1
    return Completion("ok", None, Usage(), 0.02, self.model)

  async def agenerate(self, messages, **kwargs):
    return await asyncio.to_thread(self.generate, messages, **kwargs)


def test_concurrency_limit_with_threads():
  inner = SlowClient()
  client = AccountedClient(inner, max_concurrency=2)
  threads = [threading.Thread(target=client.generate, args=("p",)) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert 1 <= inner.max_in_flight <= 2


def test_concurrency_limit_with_async_calls_shares_the_limit():
  inner = SlowClient()
  limit = ConcurrencyLimit(3)
  client = AccountedClient(inner, max_concurrency=limit)

  async def many():
    return await asyncio.gather(*[client.agenerate("p") for _ in range(10)])

  assert len(asyncio.run(many())) == 10
  assert 1 <= inner.max_in_flight <= 3


def test_invalid_settings():
  with pytest.raises(ValueError):
    TokenBudget(0)
  with pytest.raises(ValueError):
    ConcurrencyLimit(0)
