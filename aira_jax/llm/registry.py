"""Build a client from a one-line spec, e.g. "gemini:gemini-2.5-pro", "openai:qwen3@http://localhost:8000/v1",
"scripted:replies.jsonl".

`BACKENDS` maps a backend name to a factory taking the text after the colon, so a new backend is one entry.
Accounting options (`budget=`, `log=`, `max_concurrency=`) are peeled off here and wrap the client in an
`AccountedClient`; other keyword arguments go to the backend's constructor.
"""

from __future__ import annotations

from collections.abc import Callable

from aira_jax.llm.accounting import AccountedClient
from aira_jax.llm.base import LLMClient


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


def make_client(spec: str, *, budget=None, log=None, max_concurrency=None, **kwargs) -> LLMClient:
  """A client for `spec` ("backend:target"), wrapped for accounting when any accounting option is given."""
  backend, sep, target = spec.partition(":")
  if not sep or not target:
    raise ValueError(f"LLM spec {spec!r} must look like BACKEND:TARGET, e.g. gemini:gemini-2.5-pro; "
                     f"backends: {', '.join(sorted(BACKENDS))}")
  if backend not in BACKENDS:
    raise ValueError(f"unknown LLM backend {backend!r} in {spec!r}; backends: {', '.join(sorted(BACKENDS))}")
  client = BACKENDS[backend](target, **kwargs)
  if budget is None and log is None and max_concurrency is None:
    return client
  return AccountedClient(client, budget=budget, log=log, max_concurrency=max_concurrency)
