"""Retry policy: backoff growth, cap and jitter, Retry-After parsing, which errors are retried."""

import email.utils
import random
import time

import pytest

from aira_jax.llm import LLMError, LLMRateLimitError, LLMResponseError, LLMServerError, LLMTimeoutError, RetryPolicy
from aira_jax.llm.base import error_for_status
from aira_jax.llm.retry import call_with_retry, parse_retry_after


def test_backoff_doubles_and_is_capped_without_jitter():
  policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, jitter=0.0)
  assert [policy.backoff_s(k) for k in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_stays_within_the_fraction():
  policy = RetryPolicy(base_delay_s=2.0, jitter=0.5)
  waits = [policy.backoff_s(0, random.Random(seed)) for seed in range(50)]
  assert all(1.0 <= w <= 2.0 for w in waits) and len(set(waits)) > 1


def test_invalid_policy():
  with pytest.raises(ValueError, match="max_attempts"):
    RetryPolicy(max_attempts=0)
  with pytest.raises(ValueError, match="jitter"):
    RetryPolicy(jitter=2.0)


def test_parse_retry_after_seconds_and_date():
  assert parse_retry_after("3") == 3.0
  assert parse_retry_after(None) is None and parse_retry_after("soon") is None
  future = email.utils.formatdate(time.time() + 30, usegmt=True)
  assert 25 <= parse_retry_after(future) <= 31


@pytest.mark.parametrize("status, cls", [(408, LLMTimeoutError), (429, LLMRateLimitError), (500, LLMServerError),
                                         (503, LLMServerError), (400, LLMError)])
def test_error_for_status(status, cls):
  assert type(error_for_status(status, "x")) is cls


def test_retries_transient_errors_then_succeeds_honouring_retry_after():
  failures = [LLMRateLimitError("slow down", retry_after_s=7.0), LLMServerError("boom"), LLMTimeoutError("late")]
  sleeps = []

  def flaky():
    if failures:
      raise failures.pop(0)
    return "ok"

  policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=10.0, jitter=0.0)
  assert call_with_retry(flaky, policy, sleep=sleeps.append) == "ok"
  assert sleeps == [7.0, 2.0, 4.0]


def test_gives_up_after_max_attempts_and_says_so():
  calls = []

  def always_500():
    calls.append(1)
    raise LLMServerError("HTTP 500: down")

  with pytest.raises(LLMServerError, match="gave up after 3 attempts"):
    call_with_retry(always_500, RetryPolicy(max_attempts=3), sleep=lambda s: None)
  assert len(calls) == 3


@pytest.mark.parametrize("error", [LLMResponseError("bad json"), LLMError("HTTP 401: no key")])
def test_non_retryable_errors_raise_at_once(error):
  calls = []

  def fails():
    calls.append(1)
    raise error

  with pytest.raises(type(error)):
    call_with_retry(fails, RetryPolicy(max_attempts=5), sleep=lambda s: None)
  assert len(calls) == 1
