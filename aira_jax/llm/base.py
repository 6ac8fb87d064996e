"""The vocabulary every LLM client shares: messages, usage, completions, errors and the client protocol.

Backends (Gemini, OpenAI-compatible servers, scripted replies) all speak `LLMClient`, so the agents never know
which model answers. Errors form one tree under `LLMError`; the retryable ones (rate limit, server error,
timeout, connection) carry the HTTP status and any Retry-After the server sent, and `LLMResponseError` carries the raw
text of a reply that could not be used, so the caller can record it as a failed node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

ROLES = ("system", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class Message:
  """One chat turn; `role` is "system", "user" or "assistant"."""

  role: str
  content: str

  def __post_init__(self):
    if self.role not in ROLES:
      raise ValueError(f"unknown message role {self.role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(self.content, str):
      raise TypeError(f"message content must be str, got {type(self.content).__name__}")


@dataclasses.dataclass(frozen=True)
class Usage:
  """Token counts the provider reported for one call (zeros when it reported none)."""

  prompt_tokens: int = 0
  completion_tokens: int = 0
  total_tokens: int = 0

  @classmethod
  def of(cls, prompt_tokens: int | None, completion_tokens: int | None, total_tokens: int | None = None) -> "Usage":
    """Builds a Usage from possibly-missing counts; the total defaults to the sum."""
    prompt, completion = int(prompt_tokens or 0), int(completion_tokens or 0)
    total = int(total_tokens) if total_tokens is not None else prompt + completion
    return cls(prompt, completion, total)


@dataclasses.dataclass(frozen=True)
class Completion:
  """A reply: `text` as sent, `parsed` the validated JSON when a schema was asked (else None)."""

  text: str
  parsed: Any
  usage: Usage
  latency_s: float
  model: str
  raw: Any = None


class LLMError(Exception):
  """Base of every client error. `status` is the HTTP status when there was one."""

  def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None):
    super().__init__(message)
    self.status = status
    self.retry_after_s = retry_after_s


class LLMRateLimitError(LLMError):
  """429: too many requests; retried after Retry-After or a backoff."""


class LLMServerError(LLMError):
  """5xx: the provider failed; retried."""


class LLMTimeoutError(LLMError):
  """The request timed out (client side, or 408 from the server); retried."""


class LLMConnectionError(LLMError):
  """The server could not be reached, or the connection broke before a whole reply arrived (refused, reset,
  dropped, cut-off body, name lookup failure); retried."""


class LLMResponseError(LLMError):
  """The reply arrived but cannot be used (malformed, empty, not JSON, schema mismatch). Not retried.

  `raw_text` is what the model sent; `usage` the tokens it still cost, when known.
  """

  def __init__(self, message: str, *, raw_text: str | None = None, usage: Usage | None = None, **kwargs):
    super().__init__(message, **kwargs)
    self.raw_text = raw_text
    self.usage = usage


class LLMBudgetExceeded(LLMError):
  """The token budget is spent; raised before a call is made."""


RETRYABLE_ERRORS = (LLMRateLimitError, LLMServerError, LLMTimeoutError, LLMConnectionError)


def error_for_status(status: int, message: str, *, retry_after_s: float | None = None) -> LLMError:
  """Maps an HTTP status to the matching error class (408 timeout, 429 rate limit, 5xx server, else LLMError)."""
  if status == 429:
    cls = LLMRateLimitError
  elif status == 408:
    cls = LLMTimeoutError
  elif 500 <= status < 600:
    cls = LLMServerError
  else:
    cls = LLMError
  return cls(f"HTTP {status}: {message}", status=status, retry_after_s=retry_after_s)


MessagesLike = str | Iterable[Message | Mapping[str, str]]


def as_messages(messages: MessagesLike) -> list[Message]:
  """Normalizes a prompt: a plain string is one user message; dicts with role/content become Messages."""
  if isinstance(messages, str):
    return [Message("user", messages)]
  result = [m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages]
  if not result:
    raise ValueError("no messages to send")
  return result


@runtime_checkable
class LLMClient(Protocol):
  """What every backend provides. `schema` (a JSON-schema dict) asks for JSON and validates the reply."""

  model: str

  def generate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
               max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """Sends the messages and returns the completion; raises an `LLMError` subclass on failure."""
    ...

  async def agenerate(self, messages: MessagesLike, *, schema: dict | None = None, temperature: float = 0.7,
                      max_tokens: int = 2048, seed: int | None = None) -> Completion:
    """Async `generate`."""
    ...
