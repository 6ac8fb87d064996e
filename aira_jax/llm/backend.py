"""The shared skeleton of a concrete backend: retry the request, validate the reply, time the call.

A backend subclasses `BackendClient` and implements only `_request` (one HTTP round trip returning the reply
text, usage and raw payload, raising `LLMError`s). `generate` wraps it with `retry.call_with_retry`, JSON-schema
validation (`schema.parse_json_reply`) and latency; `agenerate` runs `generate` in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from aira_jax.llm.base import Completion, Message, MessagesLike, Usage, as_messages
from aira_jax.llm.retry import RetryPolicy, call_with_retry
from aira_jax.llm.schema import parse_json_reply


@dataclasses.dataclass(frozen=True)
class Request:
  """One normalized generation request as a backend sees it."""

  messages: list[Message]
  schema: dict | None
  temperature: float
  max_tokens: int
  seed: int | None


@dataclasses.dataclass(frozen=True)
class RawReply:
  """What one round trip returned before validation."""

  text: str
  usage: Usage
  raw: Any = None


PROBE_TIMEOUT_S = 10.0
"""The most a pre-run probe waits for an answer."""

REJECTING_STATUSES = (401, 403)
"""Answers to a probe that mean the run cannot work (the key is missing or wrong); any other HTTP answer means
the server is there."""


class BackendClient:
  """Base class for backends; subclasses set `model` and implement `_request`."""

  model: str = ""

  def __init__(self, *, retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep):
    self.retry = retry or RetryPolicy()
    self._sleep = sleep

  def _request(self, request: Request) -> RawReply:
    raise NotImplementedError

  def probe(self) -> None:
    """One cheap call, made before a run: raises LLMConnectionError / LLMTimeoutError when the endpoint cannot
    be reached, LLMError (with `status`) when it answers 401 or 403 (a missing or wrong key). A backend with
    nothing cheap to call does nothing."""

  def generate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
               max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """Sends the messages (retrying transient errors) and returns a validated Completion."""
    request = Request(as_messages(messages), schema, temperature, max_tokens, seed)
    start = time.monotonic()
    reply = call_with_retry(lambda: self._request(request), self.retry, sleep=self._sleep)
    parsed = parse_json_reply(reply.text, schema, usage=reply.usage) if schema is not None else None
    return Completion(reply.text, parsed, reply.usage, time.monotonic() - start, self.model, reply.raw)

  async def agenerate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
                      max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """Async `generate`, run in a worker thread."""
    return await asyncio.to_thread(self.generate, messages, schema=schema, temperature=temperature,
                                   max_tokens=max_tokens, seed=seed)

  def __repr__(self) -> str:
    return f"{type(self).__name__}(model={self.model!r})"
