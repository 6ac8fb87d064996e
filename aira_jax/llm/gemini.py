"""Gemini through the google-genai SDK, imported and built lazily on the first call.

Importing this module (or running a CLI's --help) needs neither an API key nor `google.genai`. The key comes
from the argument, `GOOGLE_API_KEY` or `GEMINI_API_KEY`. Structured output uses `response_mime_type=
"application/json"` with `response_json_schema`, and the reply is validated by our own validator (the SDK's
`parsed` is silently None on a mismatch). The SDK's own retry is left off (its default is one attempt): retries
happen once, in `retry.call_with_retry`, on APIError codes 408/429/5xx and on timeouts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from aira_jax.llm.backend import REJECTING_STATUSES, BackendClient, RawReply, Request
from aira_jax.llm.base import (LLMConnectionError, LLMError, LLMResponseError, LLMTimeoutError, Usage,
                               error_for_status)
from aira_jax.llm.retry import RetryPolicy, parse_retry_after

API_KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


def resolve_api_key(api_key: str | None = None) -> str:
  """The explicit key, else GOOGLE_API_KEY, else GEMINI_API_KEY; LLMError naming both when none is set."""
  if api_key:
    return api_key
  for name in API_KEY_VARIABLES:
    if os.environ.get(name):
      return os.environ[name]
  raise LLMError(f"no Gemini API key: set {API_KEY_VARIABLES[0]} or {API_KEY_VARIABLES[1]} "
                 "(or pass api_key=...)")


def _is_timeout(error: BaseException) -> bool:
  """True for httpx/httpx2/aiohttp/socket timeouts, recognised without importing those packages."""
  return isinstance(error, TimeoutError) or any("Timeout" in cls.__name__ for cls in type(error).__mro__)


def _is_transport_error(error: BaseException) -> bool:
  """True for connection failures raised by the SDK's HTTP stack (httpx, httpx2, httpcore, aiohttp)."""
  return isinstance(error, ConnectionError) or type(error).__module__.split(".")[0] in _TRANSPORT_MODULES


_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp")


class GeminiClient(BackendClient):
  """Gemini `generate_content`. `base_url` (tests: a local fake server) and `timeout_s` go to HttpOptions."""

  def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
               timeout_s: float = 300.0, retry: RetryPolicy | None = None,
               sleep: Callable[[float], None] = time.sleep):
    super().__init__(retry=retry, sleep=sleep)
    self.model = model
    self.base_url = base_url
    self.timeout_s = timeout_s
    self._api_key = api_key
    self._sdk_client = None
    self._lock = threading.Lock()

  def _client(self):
    """The google-genai Client, created (and the SDK imported) on first use."""
    with self._lock:
      if self._sdk_client is None:
        from google import genai
        from google.genai import types
        options = types.HttpOptions(base_url=self.base_url, timeout=max(1, int(self.timeout_s * 1000)))
        self._sdk_client = genai.Client(api_key=resolve_api_key(self._api_key), http_options=options)
      return self._sdk_client

  def _config(self, request: Request):
    from google.genai import types
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    config: dict[str, Any] = {"temperature": request.temperature, "max_output_tokens": request.max_tokens}
    if request.seed is not None:
      config["seed"] = request.seed
    if system:
      config["system_instruction"] = system
    if request.schema is not None:
      config["response_mime_type"] = "application/json"
      config["response_json_schema"] = request.schema
    return types.GenerateContentConfig(**config)

  def _call(self, call: Callable[[Any], Any]):
    """`call(sdk_client)`, with every failure as an LLMError subclass (HTTP status, timeout, unreachable)."""
    client = self._client()
    from google.genai import errors
    try:
      return call(client)
    except errors.APIError as error:
      headers = getattr(error.response, "headers", None) or {}
      retry_after = parse_retry_after(headers.get("retry-after") if hasattr(headers, "get") else None)
      raise error_for_status(int(error.code or 0), str(error), retry_after_s=retry_after) from error
    except ValueError as error:  # the SDK could not decode the HTTP body
      raise LLMResponseError(f"malformed Gemini reply: {error}") from error
    except Exception as error:
      if _is_timeout(error):
        raise LLMTimeoutError(f"Gemini gave no reply within {self.timeout_s} s") from error
      if _is_transport_error(error):
        raise LLMConnectionError(f"cannot reach Gemini ({self.base_url or 'default endpoint'}): {error!r}") from error
      raise

  def _request(self, request: Request) -> RawReply:
    contents = [{"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in request.messages if m.role != "system"]
    response = self._call(lambda client: client.models.generate_content(model=self.model, contents=contents,
                                                                        config=self._config(request)))
    return RawReply(*_text_and_usage(response), raw=response)

  def probe(self) -> None:
    """`models.get` of the configured model (free, no tokens): see BackendClient.probe. A 404 (unknown model)
    is refused too: every call of the run would fail the same way."""
    try:
      self._call(lambda client: client.models.get(model=self.model))
    except (LLMConnectionError, LLMTimeoutError):
      raise
    except LLMError as error:
      if error.status in (*REJECTING_STATUSES, 404):
        raise LLMError(f"Gemini refused {self.model!r} ({error.status}): {error}", status=error.status) from None


def _text_and_usage(response) -> tuple[str, Usage]:
  """The reply text and token usage from a GenerateContentResponse."""
  metadata = response.usage_metadata
  if metadata is None:
    usage = Usage()
  else:
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    usage = Usage.of(metadata.prompt_token_count, completion, metadata.total_token_count)
  text = None
  if response.candidates and response.candidates[0].content and response.candidates[0].content.parts:
    text = "".join(part.text for part in response.candidates[0].content.parts
                   if part.text and not getattr(part, "thought", False)) or None
  if text is None:
    reason = response.candidates[0].finish_reason if response.candidates else None
    feedback = getattr(response, "prompt_feedback", None)
    raise LLMResponseError(f"Gemini reply has no text (finish_reason={reason}, prompt_feedback={feedback})",
                           raw_text="", usage=usage)
  return text, usage
