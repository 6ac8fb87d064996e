"""Scripted client: replies in order, JSONL scripts, recorded calls, running out, cycling, schema checks."""

import asyncio
import json

import pytest

from aira_jax.llm import LLMError, LLMResponseError, LLMServerError, ScriptedClient
from aira_jax.llm.scripted import load_replies

SCHEMA = {"type": "object", "required": ["layout"], "properties": {"layout": {"type": "string"}}}


def test_replies_in_order_and_calls_recorded():
  client = ScriptedClient(["first", {"text": "second"}])
  assert client.generate("one").text == "first"
  assert client.generate([{"role": "user", "content": "two"}], temperature=0.1, seed=4).text == "second"
  assert [call.messages[0].content for call in client.calls] == ["one", "two"]
  assert client.calls[1].temperature == 0.1 and client.calls[1].seed == 4
  assert client.remaining == 0


def test_running_out_is_a_clear_error():
  client = ScriptedClient(["only"])
  client.generate("a")
  with pytest.raises(LLMError, match="ran out of replies after 1"):
    client.generate("b")


def test_cycle_starts_over():
  client = ScriptedClient(["x", "y"], cycle=True)
  assert [client.generate("p").text for _ in range(5)] == ["x", "y", "x", "y", "x"]


def test_usage_is_estimated():
  usage = ScriptedClient(["12345678"]).generate("abcd").usage
  assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1, 2, 3)


def test_schema_is_validated_like_real_backends():
  client = ScriptedClient(['{"layout": "AM"}', '{"layout": 1}', "no json"])
  assert client.generate("p", schema=SCHEMA).parsed == {"layout": "AM"}
  with pytest.raises(LLMResponseError, match=r"\$\.layout"):
    client.generate("p", schema=SCHEMA)
  with pytest.raises(LLMResponseError, match="not valid JSON"):
    client.generate("p", schema=SCHEMA)


def test_scripted_exceptions_are_raised():
  client = ScriptedClient([LLMServerError("boom"), "after"])
  with pytest.raises(LLMServerError, match="boom"):
    client.generate("p")
  assert client.generate("p").text == "after"


def test_from_jsonl(tmp_path):
  path = tmp_path / "replies.jsonl"
  path.write_text(json.dumps({"text": "a"}) + "\n\n" + json.dumps("b") + "\n")
  client = ScriptedClient.from_jsonl(path)
  assert [client.generate("p").text for _ in range(2)] == ["a", "b"]


def test_bad_jsonl_line_names_the_line(tmp_path):
  path = tmp_path / "replies.jsonl"
  path.write_text('"ok"\n{"reply": 1}\n')
  with pytest.raises(ValueError, match=":2: expected a JSON string"):
    load_replies(path)


def test_agenerate_runs_concurrently():
  client = ScriptedClient(["r"], cycle=True)

  async def many():
    return await asyncio.gather(*[client.agenerate(f"p{i}") for i in range(4)])

  assert [c.text for c in asyncio.run(many())] == ["r"] * 4
  assert len(client.calls) == 4
