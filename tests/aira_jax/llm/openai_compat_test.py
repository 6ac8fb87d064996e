"""OpenAI-compatible client against a local fake /v1/chat/completions server (no network)."""

import pytest
from fake_servers import FakeResponse

from aira_jax.llm import (LLMConnectionError, LLMError, LLMRateLimitError, LLMResponseError, LLMServerError,
                          LLMTimeoutError, Message, OpenAICompatClient, RetryPolicy, Usage, make_client as build)

SCHEMA = {"type": "object", "required": ["layout"], "properties": {"layout": {"type": "string"}}}


def chat_reply(text, prompt_tokens=11, completion_tokens=5):
  return FakeResponse(200, {
      "id": "x", "object": "chat.completion", "model": "qwen3",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens},
  })


def make_client(server, sleeps, **kwargs):
  kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay_s=0.5, jitter=0.0))
  return OpenAICompatClient("qwen3", base_url=f"{server.url}/v1", api_key="sk-test", sleep=sleeps.append, **kwargs)


def test_success_sends_messages_and_reads_usage(fake_server, sleeps):
  fake_server.enqueue(chat_reply("hello"))
  completion = make_client(fake_server, sleeps).generate(
      [Message("system", "be brief"), Message("user", "hi")], temperature=0.2, max_tokens=64, seed=3)
  assert completion.text == "hello" and completion.parsed is None
  assert completion.usage == Usage(11, 5, 16) and completion.model == "qwen3" and completion.latency_s >= 0
  (request,) = fake_server.requests
  assert request.path == "/v1/chat/completions"
  assert request.headers["Authorization"] == "Bearer sk-test"
  assert request.body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
  assert (request.body["temperature"], request.body["max_tokens"], request.body["seed"]) == (0.2, 64, 3)
  assert "response_format" not in request.body


def test_schema_asks_for_json_mode_and_parses(fake_server, sleeps):
  fake_server.enqueue(chat_reply('{"layout": "AAM"}'))
  completion = make_client(fake_server, sleeps).generate("propose", schema=SCHEMA)
  assert completion.parsed == {"layout": "AAM"}
  body = fake_server.requests[0].body
  assert body["response_format"] == {"type": "json_object"}
  assert '"layout"' in body["messages"][0]["content"]


def test_env_base_url_and_optional_key(fake_server, sleeps, monkeypatch):
  monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_server.url}/v1")
  fake_server.enqueue(chat_reply("ok"))
  assert OpenAICompatClient("m", sleep=sleeps.append).generate("hi").text == "ok"
  assert "Authorization" not in fake_server.requests[0].headers


def test_429_with_retry_after_then_success(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(429, {"error": "slow down"}, {"Retry-After": "1.5"}), chat_reply("ok"))
  assert make_client(fake_server, sleeps).generate("hi").text == "ok"
  assert len(fake_server.requests) == 2 and sleeps == [1.5]


def test_500_until_giving_up(fake_server, sleeps):
  fake_server.enqueue(*[FakeResponse(500, {"error": "down"})] * 3)
  with pytest.raises(LLMServerError, match="gave up after 3 attempts") as info:
    make_client(fake_server, sleeps).generate("hi")
  assert info.value.status == 500 and len(fake_server.requests) == 3 and sleeps == [0.5, 1.0]


def test_429_exhausted_is_a_rate_limit_error(fake_server, sleeps):
  fake_server.enqueue(*[FakeResponse(429, {"error": "slow"})] * 3)
  with pytest.raises(LLMRateLimitError):
    make_client(fake_server, sleeps).generate("hi")


def test_client_error_is_not_retried(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(401, {"error": "bad key"}))
  with pytest.raises(LLMError, match="HTTP 401") as info:
    make_client(fake_server, sleeps).generate("hi")
  assert type(info.value) is LLMError and len(fake_server.requests) == 1


def test_reply_text_not_json_when_schema_asked(fake_server, sleeps):
  fake_server.enqueue(chat_reply("Sure! The layout is AAM."))
  with pytest.raises(LLMResponseError, match="not valid JSON") as info:
    make_client(fake_server, sleeps).generate("hi", schema=SCHEMA)
  assert info.value.raw_text == "Sure! The layout is AAM." and info.value.usage == Usage(11, 5, 16)
  assert len(fake_server.requests) == 1


def test_schema_mismatch_names_the_path(fake_server, sleeps):
  fake_server.enqueue(chat_reply('{"layout": 7}'))
  with pytest.raises(LLMResponseError, match=r"\$\.layout: expected string, got integer"):
    make_client(fake_server, sleeps).generate("hi", schema=SCHEMA)


def test_malformed_http_body(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(200, "<html>gateway</html>"))
  with pytest.raises(LLMResponseError, match="malformed") as info:
    make_client(fake_server, sleeps).generate("hi")
  assert "gateway" in info.value.raw_text


def test_timeout_is_retried_then_raised(fake_server, sleeps):
  fake_server.enqueue(*[FakeResponse(200, {}, delay_s=1.5)] * 2)
  client = make_client(fake_server, sleeps, timeout_s=0.2, retry=RetryPolicy(max_attempts=2, jitter=0.0))
  with pytest.raises(LLMTimeoutError, match="within 0.2 s"):
    client.generate("hi")
  assert len(fake_server.requests) == 2 and len(sleeps) == 1


def test_refused_connection_is_retried_quickly_then_raised(sleeps):
  from fake_servers import FakeServer
  with FakeServer() as server:
    url = server.url
  client = OpenAICompatClient("m", base_url=url, sleep=sleeps.append, retry=RetryPolicy(max_attempts=3))
  with pytest.raises(LLMConnectionError, match="cannot reach .*gave up after 3 attempts"):
    client.generate("hi")
  assert sleeps == [0.5, 0.5]  # a server that is starting up: a few quick tries


@pytest.mark.parametrize("broken", [FakeResponse(drop=True), FakeResponse(200, {"x": "y" * 200}, cut_after=20)],
                         ids=["dropped", "cut-off"])
def test_broken_connection_is_a_retried_connection_error(fake_server, sleeps, broken):
  fake_server.enqueue(broken, chat_reply("after the break"))
  assert make_client(fake_server, sleeps).generate("hi").text == "after the break"
  assert len(fake_server.requests) == 2 and sleeps == [0.5]
  fake_server.enqueue(broken, broken, broken)
  with pytest.raises(LLMConnectionError, match="broke before the whole reply arrived"):
    make_client(fake_server, sleeps).generate("hi")


def test_broken_connections_land_in_the_call_log(fake_server, sleeps, tmp_path):
  from aira_jax.llm import CallLog
  fake_server.enqueue(FakeResponse(drop=True))
  client = build(f"openai:qwen3@{fake_server.url}/v1", log=tmp_path / "calls.jsonl",
                 options={"max_attempts": 1})
  with pytest.raises(LLMConnectionError):
    client.generate("hi")
  [entry] = CallLog(tmp_path / "calls.jsonl").entries()
  assert entry["error"].startswith("LLMConnectionError")


@pytest.mark.parametrize("body, message", [
    ({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 0}}, "malformed"),
    ({"choices": [{"message": {"role": "assistant", "content": ""}, "finish_reason": "length"}],
      "usage": {"prompt_tokens": 7, "completion_tokens": 3}}, "no text .*length"),
])
def test_empty_replies_raise_and_keep_their_usage(fake_server, sleeps, body, message):
  fake_server.enqueue(FakeResponse(200, body))
  with pytest.raises(LLMResponseError, match=message) as info:
    make_client(fake_server, sleeps).generate("hi")
  assert info.value.usage.prompt_tokens == 7 and info.value.usage.total_tokens == 7 + body["usage"]["completion_tokens"]


def test_llm_options_set_timeout_attempts_endpoint_and_headers(fake_server, sleeps):
  fake_server.enqueue(FakeResponse(500, {}), chat_reply("ok"))
  client = build("openai:qwen3@http://127.0.0.1:9/v1", sleep=sleeps.append,
                 options={"timeout_s": 7, "max_attempts": 2, "base_url": f"{fake_server.url}/v1",
                          "headers": {"X-Org": "lab"}})
  assert client.timeout_s == 7.0 and client.retry.max_attempts == 2
  assert client.generate("hi").text == "ok"
  assert fake_server.requests[-1].headers["X-Org"] == "lab" and len(fake_server.requests) == 2


def test_agenerate(fake_server, sleeps):
  import asyncio
  fake_server.enqueue(chat_reply("async ok"))
  assert asyncio.run(make_client(fake_server, sleeps).agenerate("hi")).text == "async ok"


@pytest.mark.parametrize("status", [200, 404, 500])
def test_probe_accepts_any_answer_of_a_reachable_server(fake_server, sleeps, status):
  fake_server.enqueue(FakeResponse(status, {"data": []}))
  make_client(fake_server, sleeps).probe()
  [request] = fake_server.requests
  assert (request.method, request.path) == ("GET", "/v1/models") and request.headers["Authorization"] == "Bearer sk-test"
  assert sleeps == []  # one call, never retried


def test_probe_refuses_a_rejected_key_and_an_unreachable_server(fake_server, sleeps):
  from fake_servers import FakeServer
  fake_server.enqueue(FakeResponse(401, {"error": "bad key"}))
  with pytest.raises(LLMError, match="refused the key \\(401\\)") as info:
    make_client(fake_server, sleeps).probe()
  assert info.value.status == 401
  with FakeServer() as server:
    url = server.url
  with pytest.raises(LLMConnectionError, match="cannot reach"):
    OpenAICompatClient("m", base_url=url, sleep=sleeps.append).probe()
  assert sleeps == []
