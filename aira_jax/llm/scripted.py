"""A client that answers from a script: for tests, dry runs and replaying recorded sessions.

Replies come from a list or a JSONL file (each line `{"text": ...}` or a plain JSON string). Every request is
recorded in `.calls`. When the script runs out the client raises `LLMError` (or starts over with `cycle=True`).
An item that is an exception instance is raised instead of answered, to script failures. Schemas are validated
exactly as the real backends do, and usage is estimated (about 4 characters a token) so budgets can be tested.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aira_jax.llm.backend import BackendClient, RawReply, Request
from aira_jax.llm.base import LLMError, Usage
from aira_jax.llm.retry import NO_RETRY, RetryPolicy


def estimate_tokens(text: str) -> int:
  """A rough token count (4 characters a token, at least 1 for non-empty text)."""
  return (len(text) + 3) // 4


def load_replies(path: str | pathlib.Path) -> list[str]:
  """Reads a JSONL script: each non-blank line is a JSON string or an object with a "text" field."""
  replies = []
  for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), start=1):
    if not line.strip():
      continue
    try:
      item = json.loads(line)
    except ValueError as error:
      raise ValueError(f"{path}:{number}: not JSON ({error})") from None
    if isinstance(item, dict) and isinstance(item.get("text"), str):
      replies.append(item["text"])
    elif isinstance(item, str):
      replies.append(item)
    else:
      raise ValueError(f'{path}:{number}: expected a JSON string or {{"text": ...}}, got {line.strip()[:80]}')
  return replies


class ScriptedClient(BackendClient):
  """Answers with the next scripted reply; `.calls` holds every Request received, in order."""

  def __init__(self, replies: Iterable[str | BaseException | dict[str, Any]], *, cycle: bool = False,
               model: str = "scripted", retry: RetryPolicy | None = None,
               sleep: Callable[[float], None] = time.sleep):
    super().__init__(retry=retry or NO_RETRY, sleep=sleep)
    self.model = model
    self.replies = [r["text"] if isinstance(r, dict) else r for r in replies]
    self.cycle = cycle
    self.calls: list[Request] = []
    self._next = 0
    self._lock = threading.Lock()

  @classmethod
  def from_jsonl(cls, path: str | pathlib.Path, **kwargs) -> "ScriptedClient":
    """A client replaying the replies in a JSONL file."""
    return cls(load_replies(path), **kwargs)

  @property
  def remaining(self) -> int:
    """Replies not yet used (ignores cycling)."""
    return len(self.replies) - self._next

  def _request(self, request: Request) -> RawReply:
    with self._lock:
      self.calls.append(request)
      if self._next >= len(self.replies):
        if not (self.cycle and self.replies):
          raise LLMError(f"scripted client ran out of replies after {len(self.replies)} "
                         f"(call {len(self.calls)}); pass more replies or cycle=True")
        self._next = 0
      reply = self.replies[self._next]
      self._next += 1
    if isinstance(reply, BaseException):
      raise reply
    prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
    return RawReply(reply, Usage.of(prompt_tokens, estimate_tokens(reply)))
