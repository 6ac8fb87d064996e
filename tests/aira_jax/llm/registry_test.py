"""make_client: spec parsing for each backend, accounting wrapping, and errors for bad specs."""

import pytest

from aira_jax.llm import (BACKENDS, AccountedClient, GeminiClient, LLMClient, OpenAICompatClient, ScriptedClient,
                          TokenBudget, make_client)
from aira_jax.llm.registry import check_llm_options


def test_gemini_spec():
  client = make_client("gemini:gemini-2.5-pro", api_key="k", timeout_s=5)
  assert isinstance(client, GeminiClient) and client.model == "gemini-2.5-pro" and client.timeout_s == 5


def test_openai_spec_with_base_url():
  client = make_client("openai:qwen3@http://localhost:8000/v1")
  assert isinstance(client, OpenAICompatClient)
  assert (client.model, client.base_url) == ("qwen3", "http://localhost:8000/v1")


def test_openai_spec_without_base_url_uses_env(monkeypatch):
  monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1/")
  client = make_client("openai:gpt-4o-mini")
  assert (client.model, client.base_url) == ("gpt-4o-mini", "http://example.invalid/v1")


def test_scripted_spec(tmp_path):
  path = tmp_path / "replies.jsonl"
  path.write_text('"hi"\n')
  client = make_client(f"scripted:{path}")
  assert isinstance(client, ScriptedClient) and client.generate("p").text == "hi"


def test_accounting_options_wrap_the_client(tmp_path):
  path = tmp_path / "replies.jsonl"
  path.write_text('"hi"\n')
  client = make_client(f"scripted:{path}", budget=TokenBudget(100), log=tmp_path / "calls.jsonl", max_concurrency=2)
  assert isinstance(client, AccountedClient) and isinstance(client, LLMClient)
  client.generate("p")
  assert client.budget.used > 0 and len(client.log.entries()) == 1


def test_unknown_backend_lists_the_backends():
  with pytest.raises(ValueError, match="unknown LLM backend 'claude'.*gemini, openai, scripted"):
    make_client("claude:opus")


@pytest.mark.parametrize("spec", ["gemini-2.5-pro", "gemini:", ""])
def test_malformed_spec(spec):
  with pytest.raises(ValueError, match="BACKEND:TARGET"):
    make_client(spec)


def test_every_backend_builds_a_protocol_client(tmp_path):
  path = tmp_path / "r.jsonl"
  path.write_text('"x"\n')
  targets = {"gemini": "m", "openai": "m@http://127.0.0.1:1/v1", "scripted": str(path)}
  assert set(BACKENDS) == set(targets)
  for name, target in targets.items():
    assert isinstance(make_client(f"{name}:{target}"), LLMClient)


def test_llm_options_become_backend_arguments():
  client = make_client("gemini:gemini-2.5-pro", options={"timeout_s": 12, "max_attempts": 4,
                                                         "base_url": "https://proxy.example/gemini"})
  assert (client.timeout_s, client.retry.max_attempts, client.base_url) == (12.0, 4, "https://proxy.example/gemini")
  assert check_llm_options("openai:m", {}) == {}
  with pytest.raises(ValueError, match=r"not options of the scripted backend; allowed: none"):
    check_llm_options("scripted:x.jsonl", {"timeout_s": 1})
  with pytest.raises(ValueError, match="headers must map header names to strings"):
    check_llm_options("openai:m", {"headers": {"X": 1}})
