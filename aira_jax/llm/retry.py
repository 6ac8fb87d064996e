"""Retry with exponential backoff and jitter for transient LLM errors (408, 429, 5xx, timeouts).

A `RetryPolicy` says how many attempts and how long to wait; `call_with_retry` runs a function under it and
honours a server's Retry-After (carried on the error as `retry_after_s`). The sleep and the random source are
injectable so tests run instantly and deterministically.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time
from collections.abc import Callable
from typing import TypeVar

from aira_jax.llm.base import RETRYABLE_ERRORS, LLMError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """`max_attempts` counts the first try; waits grow base_delay_s * 2**k, capped at max_delay_s.

  `jitter` in [0, 1] is the fraction of each wait drawn at random (0: fixed waits; 1: uniform in [0, wait]).
  """

  max_attempts: int = 5
  base_delay_s: float = 1.0
  max_delay_s: float = 30.0
  jitter: float = 0.5

  def __post_init__(self):
    if self.max_attempts < 1:
      raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
    if not 0.0 <= self.jitter <= 1.0:
      raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

  def backoff_s(self, retry_index: int, rng: random.Random | None = None) -> float:
    """Wait before retry number `retry_index` (0 for the first retry)."""
    delay = min(self.max_delay_s, self.base_delay_s * (2.0 ** retry_index))
    return delay * (1.0 - self.jitter * (rng or random).random())


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None) -> float | None:
  """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent/invalid."""
  if not value:
    return None
  value = value.strip()
  try:
    return max(0.0, float(value))
  except ValueError:
    pass
  try:
    moment = email.utils.parsedate_to_datetime(value)
  except (TypeError, ValueError):
    return None
  return max(0.0, moment.timestamp() - time.time())


def is_retryable(error: BaseException) -> bool:
  """True for rate limits, server errors and timeouts."""
  return isinstance(error, RETRYABLE_ERRORS)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep,
                    rng: random.Random | None = None) -> T:
  """Calls `fn` until it succeeds, a non-retryable error is raised, or `policy.max_attempts` are used.

  A Retry-After on the error overrides the backoff (still capped at max_delay_s). The last error is re-raised
  with the attempt count added to its message.
  """
  for attempt in range(1, policy.max_attempts + 1):
    try:
      return fn()
    except LLMError as error:
      if not is_retryable(error):
        raise
      if attempt == policy.max_attempts:
        if policy.max_attempts > 1:
          error.args = (f"{error.args[0] if error.args else error} (gave up after {attempt} attempts)",)
        raise
      wait = error.retry_after_s if error.retry_after_s is not None else policy.backoff_s(attempt - 1, rng)
      sleep(min(wait, policy.max_delay_s))
  raise AssertionError("unreachable")
