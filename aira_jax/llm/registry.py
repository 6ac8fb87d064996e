"""Build a client from a one-line spec, e.g. "gemini:gemini-2.5-pro", "openai:qwen3@http://localhost:8000/v1",
"scripted:replies.jsonl".

`BACKENDS` maps a backend name to a factory taking the text after the colon, so a new backend is one entry.
Accounting options (`budget=`, `log=`, `max_concurrency=`) are peeled off here and wrap the client in an
`AccountedClient`; other keyword arguments go to the backend's constructor. `options` are the user-facing
settings a config's `llm_options` holds (`LLM_OPTIONS`: timeout_s, max_attempts, base_url and, for OpenAI-
compatible servers, headers); `check_llm_options` validates them without building a client.
"""

from __future__ import annotations

from collections.abc import Callable

from collections.abc import Mapping
from typing import Any

from aira_jax.llm.accounting import AccountedClient
from aira_jax.llm.base import LLMClient
from aira_jax.llm.retry import RetryPolicy


def _gemini(target: str, **kwargs) -> LLMClient:
  from aira_jax.llm.gemini import GeminiClient
  return GeminiClient(target, **kwargs)


def _openai(target: str, **kwargs) -> LLMClient:
  from aira_jax.llm.openai_compat import OpenAICompatClient
  model, _, base_url = target.partition("@")
  if base_url:
    kwargs.setdefault("base_url", base_url)
  return OpenAICompatClient(model, **kwargs)


def _scripted(target: str, **kwargs) -> LLMClient:
  from aira_jax.llm.scripted import ScriptedClient
  return ScriptedClient.from_jsonl(target, **kwargs)


BACKENDS: dict[str, Callable[..., LLMClient]] = {
    "gemini": _gemini,      # gemini:MODEL
    "openai": _openai,      # openai:MODEL or openai:MODEL@BASE_URL
    "scripted": _scripted,  # scripted:PATH.jsonl
}


LLM_OPTIONS: dict[str, tuple[str, ...]] = {
    "gemini": ("timeout_s", "max_attempts", "base_url"),
    "openai": ("timeout_s", "max_attempts", "base_url", "headers"),
    "scripted": (),
}
"""The `llm_options` each backend takes: seconds per request, attempts per call (the first included), the
endpoint (a proxy, a regional endpoint, a local server) and extra HTTP headers."""


def parse_spec(spec: str) -> tuple[str, str]:
  """(backend, target) of "backend:target"; ValueError naming the known backends otherwise."""
  backend, sep, target = str(spec).partition(":")
  if not sep or not target:
    raise ValueError(f"LLM spec {spec!r} must look like BACKEND:TARGET, e.g. gemini:gemini-2.5-pro; "
                     f"backends: {', '.join(sorted(BACKENDS))}")
  if backend not in BACKENDS:
    raise ValueError(f"unknown LLM backend {backend!r} in {spec!r}; backends: {', '.join(sorted(BACKENDS))}")
  return backend, target


def check_llm_options(spec: str, options: Mapping[str, Any]) -> dict[str, Any]:
  """The backend keyword arguments for a config's `llm_options`; ValueError naming the bad key or value."""
  backend, _ = parse_spec(spec)
  allowed = LLM_OPTIONS.get(backend, ())
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"llm_options {unknown} are not options of the {backend} backend; allowed: "
                     f"{', '.join(allowed) or 'none'}")
  kwargs: dict[str, Any] = {}
  for key, value in options.items():
    if key == "timeout_s":
      if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"llm_options.timeout_s must be a positive number of seconds, got {value!r}")
      kwargs["timeout_s"] = float(value)
    elif key == "max_attempts":
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"llm_options.max_attempts must be an integer >= 1, got {value!r}")
      kwargs["retry"] = RetryPolicy(max_attempts=value)
    elif key == "base_url":
      if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"llm_options.base_url must be an http(s) URL, got {value!r}")
      kwargs["base_url"] = value
    elif key == "headers":
      if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in value.items()):
        raise ValueError(f"llm_options.headers must map header names to strings, got {value!r}")
      kwargs["headers"] = dict(value)
  return kwargs


def make_client(spec: str, *, budget=None, log=None, max_concurrency=None, options: Mapping[str, Any] | None = None,
                **kwargs) -> LLMClient:
  """A client for `spec` ("backend:target"), wrapped for accounting when any accounting option is given;
  `options` are a config's `llm_options` (`check_llm_options`), other keyword arguments go to the backend."""
  backend, target = parse_spec(spec)
  kwargs = {**check_llm_options(spec, options or {}), **kwargs}
  client = BACKENDS[backend](target, **kwargs)
  if budget is None and log is None and max_concurrency is None:
    return client
  return AccountedClient(client, budget=budget, log=log, max_concurrency=max_concurrency)
