"""Token budgets, call logs and concurrency limits, wired around any client by one wrapper.

`AccountedClient(inner, budget=, log=, max_concurrency=)` checks the `TokenBudget` before each call (raising
`LLMBudgetExceeded` once it is spent), holds a `ConcurrencyLimit` slot for the call, charges the reply's usage
(also for replies that failed validation, since their tokens were spent) and appends the prompt, reply, usage
and latency to a `CallLog` JSONL file. All three are thread-safe; concurrent calls that pass the budget check
together may overshoot it by at most their own usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import threading
import time
from typing import Any

from aira_jax.llm.base import (Completion, LLMBudgetExceeded, LLMClient, LLMResponseError, MessagesLike,
                               Usage, as_messages)


class TokenBudget:
  """A cap on total tokens across all calls charged to it."""

  def __init__(self, max_total_tokens: int):
    if max_total_tokens <= 0:
      raise ValueError(f"max_total_tokens must be positive, got {max_total_tokens}")
    self.max_total_tokens = max_total_tokens
    self._used = 0
    self._lock = threading.Lock()

  @property
  def used(self) -> int:
    with self._lock:
      return self._used

  @property
  def remaining(self) -> int:
    return max(0, self.max_total_tokens - self.used)

  def check(self) -> None:
    """Raises LLMBudgetExceeded when nothing is left."""
    used = self.used
    if used >= self.max_total_tokens:
      raise LLMBudgetExceeded(f"token budget spent: {used} of {self.max_total_tokens} tokens used")

  def charge(self, usage: Usage) -> None:
    """Adds one call's total tokens."""
    with self._lock:
      self._used += usage.total_tokens


class CallLog:
  """Appends one JSON line per call (prompt, reply or error, usage, latency) to `path`."""

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._lock = threading.Lock()

  def record(self, *, model: str, messages: MessagesLike, schema: dict | None, completion: Completion | None = None,
             error: BaseException | None = None, latency_s: float | None = None) -> None:
    """Writes one line; `completion` for a success, `error` for a failure."""
    entry: dict[str, Any] = {
        "time": time.time(),
        "model": model,
        "messages": [dataclasses.asdict(m) for m in as_messages(messages)],
        "schema": schema,
    }
    if completion is not None:
      entry.update(text=completion.text, usage=dataclasses.asdict(completion.usage), latency_s=completion.latency_s)
    if error is not None:
      entry.update(error=f"{type(error).__name__}: {error}", latency_s=latency_s)
      if isinstance(error, LLMResponseError):
        entry.update(text=error.raw_text, usage=dataclasses.asdict(error.usage) if error.usage else None)
    line = json.dumps(entry, default=str)
    with self._lock, self.path.open("a") as file:
      file.write(line + "\n")

  def entries(self) -> list[dict]:
    """All lines read back."""
    if not self.path.exists():
      return []
    return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class ConcurrencyLimit:
  """At most `max_in_flight` calls at once; a context manager for threads (async calls run in threads)."""

  def __init__(self, max_in_flight: int):
    if max_in_flight < 1:
      raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    self.max_in_flight = max_in_flight
    self._semaphore = threading.BoundedSemaphore(max_in_flight)

  def __enter__(self) -> "ConcurrencyLimit":
    self._semaphore.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self._semaphore.release()


class AccountedClient:
  """Wraps any LLMClient with an optional budget, call log and concurrency limit."""

  def __init__(self, inner: LLMClient, *, budget: TokenBudget | None = None,
               log: CallLog | str | pathlib.Path | None = None, max_concurrency: int | ConcurrencyLimit | None = None):
    self.inner = inner
    self.model = inner.model
    self.budget = budget
    self.log = CallLog(log) if isinstance(log, (str, pathlib.Path)) else log
    self.limit = ConcurrencyLimit(max_concurrency) if isinstance(max_concurrency, int) else max_concurrency

  def generate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
               max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """The inner client's generate, charged, logged and limited."""
    if self.budget is not None:
      self.budget.check()
    start = time.monotonic()
    try:
      with self.limit if self.limit is not None else contextlib.nullcontext():
        completion = self.inner.generate(messages, schema=schema, temperature=temperature, max_tokens=max_tokens,
                                         seed=seed)
    except Exception as error:  # every failed call is logged, an unexpected exception type included
      if self.budget is not None and isinstance(error, LLMResponseError) and error.usage is not None:
        self.budget.charge(error.usage)
      if self.log is not None:
        self.log.record(model=self.model, messages=messages, schema=schema, error=error,
                        latency_s=time.monotonic() - start)
      raise
    if self.budget is not None:
      self.budget.charge(completion.usage)
    if self.log is not None:
      self.log.record(model=self.model, messages=messages, schema=schema, completion=completion)
    return completion

  async def agenerate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
                      max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """Async `generate`, run in a worker thread (so the same limit covers sync and async callers)."""
    return await asyncio.to_thread(self.generate, messages, schema=schema, temperature=temperature,
                                   max_tokens=max_tokens, seed=seed)

  def __repr__(self) -> str:
    return f"AccountedClient({self.inner!r})"
