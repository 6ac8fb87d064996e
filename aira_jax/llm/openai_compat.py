"""A client for any OpenAI-compatible `/chat/completions` server (OpenAI, vLLM, SGLang, llama.cpp, Ollama).

Standard library only (`urllib.request`), so a local model server needs no extra package. The base URL and key
come from arguments or `OPENAI_BASE_URL` / `OPENAI_API_KEY` (the key is optional for local servers). With a
schema the request asks for JSON mode (`response_format={"type": "json_object"}`) and the schema is also put in
the system prompt, since JSON mode alone does not tell the model the shape; the reply is validated here.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from aira_jax.llm.backend import PROBE_TIMEOUT_S, REJECTING_STATUSES, BackendClient, RawReply, Request
from aira_jax.llm.base import (LLMConnectionError, LLMError, LLMResponseError, LLMTimeoutError, Message, Usage,
                               error_for_status)
from aira_jax.llm.retry import RetryPolicy, parse_retry_after

DEFAULT_BASE_URL = "https://api.openai.com/v1"
REFUSED_RETRY_S = 0.5
"""Wait before retrying a refused connection (a server starting up): a few quick tries, not long backoffs."""


def schema_instruction(schema: dict) -> str:
  """The system-prompt line that tells the model which JSON shape to answer with."""
  return "Answer with one JSON value (no prose) matching this JSON schema:\n" + json.dumps(schema)


class OpenAICompatClient(BackendClient):
  """Chat completions over HTTP. `base_url` ends with the API root, e.g. "http://localhost:8000/v1"."""

  def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
               timeout_s: float = 120.0, retry: RetryPolicy | None = None,
               sleep: Callable[[float], None] = time.sleep, extra_body: dict | None = None,
               headers: dict[str, str] | None = None):
    super().__init__(retry=retry, sleep=sleep)
    self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
    self.model = model
    self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    self.timeout_s = timeout_s
    self.extra_body = dict(extra_body or {})

  def request_body(self, request: Request) -> dict:
    """The JSON body sent for `request`."""
    messages = list(request.messages)
    if request.schema is not None:
      messages.insert(0, Message("system", schema_instruction(request.schema)))
    body = {
        "model": self.model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        **self.extra_body,
    }
    if request.seed is not None:
      body["seed"] = request.seed
    if request.schema is not None:
      body["response_format"] = {"type": "json_object"}
    return body

  def _headers(self) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **self.headers}
    if self.api_key:
      headers["Authorization"] = f"Bearer {self.api_key}"
    return headers

  def _open(self, http_request: urllib.request.Request, timeout_s: float) -> bytes:
    """The reply body; every failure as an LLMError subclass (HTTP status, timeout, unreachable, broken)."""
    try:
      with urllib.request.urlopen(http_request, timeout=timeout_s) as response:
        return response.read()
    except urllib.error.HTTPError as error:
      detail = error.read().decode(errors="replace")[:500]
      raise error_for_status(error.code, detail, retry_after_s=parse_retry_after(error.headers.get("Retry-After")))
    except (TimeoutError, socket.timeout) as error:
      raise LLMTimeoutError(f"no reply from {self.base_url} within {timeout_s} s") from error
    except urllib.error.URLError as error:
      if isinstance(error.reason, (TimeoutError, socket.timeout)):
        raise LLMTimeoutError(f"no reply from {self.base_url} within {timeout_s} s") from error
      refused = isinstance(error.reason, ConnectionRefusedError)
      raise LLMConnectionError(f"cannot reach {self.base_url}: {error.reason}",
                               retry_after_s=REFUSED_RETRY_S if refused else None) from error
    except (http.client.HTTPException, ConnectionError, OSError) as error:  # reset, dropped, cut-off body
      raise LLMConnectionError(f"the connection to {self.base_url} broke before the whole reply arrived: "
                               f"{type(error).__name__}: {error}") from error

  def _request(self, request: Request) -> RawReply:
    http_request = urllib.request.Request(f"{self.base_url}/chat/completions", method="POST", headers=self._headers(),
                                          data=json.dumps(self.request_body(request)).encode())
    return _parse_reply(self._open(http_request, self.timeout_s))

  def probe(self) -> None:
    """GET {base_url}/models (listed by OpenAI-compatible servers, free): see BackendClient.probe. A server
    without the route (404) or with another error still answered, so it is reachable."""
    try:
      self._open(urllib.request.Request(f"{self.base_url}/models", headers=self._headers()),
                 min(self.timeout_s, PROBE_TIMEOUT_S))
    except (LLMConnectionError, LLMTimeoutError):
      raise
    except LLMError as error:
      if error.status in REJECTING_STATUSES:
        raise LLMError(f"{self.base_url} refused the key ({error.status}): {error}", status=error.status) from None


def _parse_reply(payload: bytes) -> RawReply:
  """Text and usage from a chat-completions reply body."""
  text_payload = payload.decode(errors="replace")
  try:
    data = json.loads(text_payload)
  except ValueError as error:
    raise LLMResponseError(f"malformed chat-completions reply ({error!r})", raw_text=text_payload) from None
  usage_data = (data.get("usage") if isinstance(data, dict) else None) or {}
  try:  # usage first: a reply without choices still cost tokens
    usage = Usage.of(usage_data.get("prompt_tokens"), usage_data.get("completion_tokens"),
                     usage_data.get("total_tokens"))
  except (AttributeError, TypeError, ValueError):
    usage = Usage()
  try:
    choice = data["choices"][0]
    text = choice["message"].get("content")
  except (KeyError, IndexError, TypeError, AttributeError) as error:
    raise LLMResponseError(f"malformed chat-completions reply ({error!r})", raw_text=text_payload,
                           usage=usage) from None
  if not isinstance(text, str) or not text.strip():
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    raise LLMResponseError(f"reply has no text (finish_reason={reason!r})", raw_text=text_payload, usage=usage)
  return RawReply(text, usage, data)
