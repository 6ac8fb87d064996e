"""The real google-genai SDK, driven by GeminiClient, against a local fake Gemini REST server (no network)."""

import pathlib
import subprocess
import sys

import pytest
from fake_servers import FakeResponse

from aira_jax.llm import (GeminiClient, LLMConnectionError, LLMError, LLMRateLimitError, LLMResponseError,
                          LLMServerError, LLMTimeoutError, Message, RetryPolicy, Usage)

SCHEMA = {"type": "object", "required": ["layout"], "properties": {"layout": {"type": "string"}}}
MODEL = "gemini-2.5-pro"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


def gemini_reply(text, prompt_tokens=12, candidate_tokens=4, thought_tokens=None):
  usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": candidate_tokens,
           "totalTokenCount": prompt_tokens + candidate_tokens + (thought_tokens or 0)}
  if thought_tokens:
    usage["thoughtsTokenCount"] = thought_tokens
  return FakeResponse(200, {
      "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
      "usageMetadata": usage, "modelVersion": MODEL,
  })


def api_error(code, status, headers=None):
  return FakeResponse(code, {"error": {"code": code, "message": status.lower(), "status": status}}, headers or {})


def make_client(server, sleeps, **kwargs):
  kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay_s=0.5, jitter=0.0))
  return GeminiClient(MODEL, api_key="test-key", base_url=server.url, sleep=sleeps.append, **kwargs)


def test_success_text_usage_and_request_shape(fake_server, sleeps):
  fake_server.enqueue(gemini_reply("hello", thought_tokens=3))
  messages = [Message("system", "be brief"), Message("user", "hi"), Message("assistant", "yes?"),
              Message("user", "go")]
  completion = make_client(fake_server, sleeps).generate(messages, temperature=0.3, max_tokens=99, seed=5)
  assert completion.text == "hello" and completion.parsed is None and completion.model == MODEL
  assert completion.usage == Usage(prompt_tokens=12, completion_tokens=7, total_tokens=19)
  (request,) = fake_server.requests
  assert request.path.endswith(f"/models/{MODEL}:generateContent")
  assert request.headers["x-goog-api-key"] == "test-key"
  assert [c["role"] for c in request.body["contents"]] == ["user", "model", "user"]
  assert request.body["systemInstruction"]["parts"] == [{"text": "be brief"}]
  config = request.body["generationConfig"]
  assert (config["temperature"], config["maxOutputTokens"], config["seed"]) == (0.3, 99, 5)
  assert "responseMimeType" not in config


def test_schema_sends_json_mime_and_schema_and_parses(fake_server, sleeps):
  fake_server.enqueue(gemini_reply('{"layout": "AMAM"}'))
  completion = make_client(fake_server, sleeps).generate("propose", schema=SCHEMA)
  assert completion.parsed == {"layout": "AMAM"}
  config = fake_server.requests[0].body["generationConfig"]
  assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == SCHEMA


def test_429_then_success_is_retried_once(fake_server, sleeps):
  fake_server.enqueue(api_error(429, "RESOURCE_EXHAUSTED", {"Retry-After": "2"}), gemini_reply("ok"))
  assert make_client(fake_server, sleeps).generate("hi").text == "ok"
  assert len(fake_server.requests) == 2 and sleeps == [2.0]


def test_429_without_retry_after_uses_backoff(fake_server, sleeps):
  fake_server.enqueue(api_error(429, "RESOURCE_EXHAUSTED"), gemini_reply("ok"))
  make_client(fake_server, sleeps).generate("hi")
  assert sleeps == [0.5]


def test_500_until_giving_up(fake_server, sleeps):
  fake_server.enqueue(*[api_error(500, "INTERNAL")] * 3)
  with pytest.raises(LLMServerError, match="gave up after 3 attempts") as info:
    make_client(fake_server, sleeps).generate("hi")
  assert info.value.status == 500
  assert len(fake_server.requests) == 3 and sleeps == [0.5, 1.0]  # the SDK added no attempts of its own


def test_rate_limit_exhausted(fake_server, sleeps):
  fake_server.enqueue(*[api_error(429, "RESOURCE_EXHAUSTED")] * 3)
  with pytest.raises(LLMRateLimitError):
    make_client(fake_server, sleeps).generate("hi")


def test_bad_request_is_not_retried(fake_server, sleeps):
  fake_server.enqueue(api_error(400, "INVALID_ARGUMENT"))
  with pytest.raises(LLMError, match="HTTP 400") as info:
    make_client(fake_server, sleeps).generate("hi")
  assert type(info.value) is LLMError and len(fake_server.requests) == 1


def test_reply_not_json_when_schema_asked(fake_server, sleeps):
  fake_server.enqueue(gemini_reply("layout: AMAM"))
  with pytest.raises(LLMResponseError, match="not valid JSON") as info:
    make_client(fake_server, sleeps).generate("hi", schema=SCHEMA)
  assert info.value.raw_text == "layout: AMAM" and info.value.usage.total_tokens == 16


def test_schema_mismatch_names_the_path(fake_server, sleeps):
  fake_server.enqueue(gemini_reply('{"layout": ["A"]}'))
  with pytest.raises(LLMResponseError, match=r"\$\.layout: expected string, got array"):
    make_client(fake_server, sleeps).generate("hi", schema=SCHEMA)


def test_malformed_http_body(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(200, "not json {"))
  with pytest.raises(LLMResponseError, match="malformed"):
    make_client(fake_server, sleeps).generate("hi")


def test_reply_without_text(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(200, {"candidates": [{"finishReason": "SAFETY"}]}))
  with pytest.raises(LLMResponseError, match="no text"):
    make_client(fake_server, sleeps).generate("hi")


def test_timeout(fake_server, sleeps):
  fake_server.enqueue(*[FakeResponse(200, {}, delay_s=1.5)] * 2)
  client = make_client(fake_server, sleeps, timeout_s=0.2, retry=RetryPolicy(max_attempts=2, jitter=0.0))
  with pytest.raises(LLMTimeoutError):
    client.generate("hi")
  assert len(fake_server.requests) == 2 and len(sleeps) == 1


def test_unreachable_server_is_a_retried_connection_error(sleeps):
  from fake_servers import FakeServer
  with FakeServer() as server:
    url = server.url
  client = GeminiClient(MODEL, api_key="k", base_url=url, sleep=sleeps.append, retry=RetryPolicy(max_attempts=2))
  with pytest.raises(LLMConnectionError, match="cannot reach Gemini"):
    client.generate("hi")
  assert len(sleeps) == 1


def test_dropped_connection_is_retried(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(drop=True), gemini_reply("after the break"))
  assert make_client(fake_server, sleeps).generate("hi").text == "after the break"
  assert len(fake_server.requests) == 2 and sleeps == [0.5]


def test_missing_api_key_names_both_variables():
  client = GeminiClient(MODEL)  # constructing needs no key
  with pytest.raises(LLMError, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
    client.generate("hi")


def test_key_from_environment(fake_server, sleeps, monkeypatch):
  monkeypatch.setenv("GEMINI_API_KEY", "env-key")
  fake_server.enqueue(gemini_reply("ok"))
  GeminiClient(MODEL, base_url=fake_server.url, sleep=sleeps.append).generate("hi")
  assert fake_server.requests[0].headers["x-goog-api-key"] == "env-key"


def test_importing_the_package_does_not_import_google_genai():
  code = ("import sys, aira_jax.llm, aira_jax.llm.gemini; "
          "aira_jax.llm.make_client('gemini:gemini-2.5-pro'); "
          "assert 'google.genai' not in sys.modules, 'google.genai imported'")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO_ROOT)


def test_probe_gets_the_model_and_refuses_what_every_call_would_fail_on(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(200, {"name": f"models/{MODEL}"}))
  make_client(fake_server, sleeps).probe()
  [request] = fake_server.requests
  assert request.method == "GET" and request.path.split("?")[0].endswith(f"models/{MODEL}")
  for code, status in [(403, "PERMISSION_DENIED"), (404, "NOT_FOUND")]:
    fake_server.enqueue(api_error(code, status))
    with pytest.raises(LLMError, match=f"Gemini refused '{MODEL}' \\({code}\\)"):
      make_client(fake_server, sleeps).probe()
  fake_server.enqueue(api_error(500, "INTERNAL"))
  make_client(fake_server, sleeps).probe()  # the server answered: reachable
  assert sleeps == []
