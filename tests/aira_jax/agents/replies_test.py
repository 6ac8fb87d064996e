"""Tests of reply parsing: code-block and JSON extraction rules, and the repair round-trip of parse_with_repair."""

import pytest

from aira_jax.agents.replies import (ReplyParseError, extract_code_block, extract_json, parse_with_repair,
                                     total_usage)
from aira_jax.llm.base import Completion, LLMRateLimitError, LLMResponseError, Usage, as_messages


class FakeClient:
  """Returns scripted texts (or raises scripted errors) and records the messages of every call."""

  model = "fake"

  def __init__(self, replies):
    self.replies = list(replies)
    self.calls = []

  def generate(self, messages, **kwargs):
    self.calls.append((as_messages(messages), kwargs))
    reply = self.replies.pop(0)
    if isinstance(reply, BaseException):
      raise reply
    return Completion(text=reply, parsed=None, usage=Usage(10, len(reply), 10 + len(reply)), latency_s=0.01,
                      model=self.model)


def parse_layout(completion):
  value = extract_json(completion.text)
  if "layout" not in value:
    raise ReplyParseError("the JSON object has no 'layout' field")
  return value["layout"]


# Code blocks.

def test_code_block_with_prose_around():
  text = "Here is my model:\n```python\nx = 1\ny = 2\n```\nIt should train fast."
  assert extract_code_block(text) == "x = 1\ny = 2"
  assert extract_code_block(text, "python") == "x = 1\ny = 2"


def test_code_block_prefers_language_tag_and_accepts_untagged():
  text = "```bash\npip install x\n```\n```python\nimport x\n```"
  assert extract_code_block(text, "python") == "import x"
  assert extract_code_block(text, "bash") == "pip install x"
  assert extract_code_block("```\nimport y\n```", "python") == "import y"


def test_several_blocks_last_longest_wins_otherwise_ambiguous():
  snippet_then_file = "Change this:\n```python\nx = 1\n```\nFull file:\n```python\nx = 1\nprint(x)\n```"
  assert extract_code_block(snippet_then_file) == "x = 1\nprint(x)"
  duplicated = "```python\nx = 1\n```\nagain:\n```python\nx = 1\n```"
  assert extract_code_block(duplicated) == "x = 1"
  file_then_snippet = "```python\nx = 1\nprint(x)\n```\nthe key line:\n```python\nx = 1\n```"
  with pytest.raises(ReplyParseError, match="2 different"):
    extract_code_block(file_then_snippet)


def test_no_block_and_unclosed_block():
  with pytest.raises(ReplyParseError, match="no fenced code block"):
    extract_code_block("just prose, x = 1")
  with pytest.raises(ReplyParseError, match="never closed"):
    extract_code_block("```python\nx = 1\n")


def test_tilde_fence_and_longer_fence():
  assert extract_code_block("~~~\na\n~~~") == "a"
  assert extract_code_block("````md\n```\ninner\n```\n````") == "```\ninner\n```"


# JSON.

def test_json_fenced_block_with_prose():
  text = 'Plan first.\n```json\n{"plan": "p", "layout": "2A+2M"}\n```\nDone.'
  assert extract_json(text) == {"plan": "p", "layout": "2A+2M"}


def test_json_plain_text_outermost_object():
  text = 'Sure! My answer is {"plan": "nest {braces} in strings", "layout": "AM", "extra": {"k": [1, 2]}} ok'
  assert extract_json(text) == {"plan": "nest {braces} in strings", "layout": "AM", "extra": {"k": [1, 2]}}


def test_json_last_object_wins_and_invalid_braces_skipped():
  text = 'Format is {plan, layout}. Example {"layout": "A"}. Final: {"layout": "MM"}'
  assert extract_json(text) == {"layout": "MM"}
  assert extract_json('```\n{"layout": "AMA"}\n```') == {"layout": "AMA"}


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("no object here", "no JSON object"),
    ('{"plan": "unterminated', "no complete"),
    ('```json\n{"a": 1,}\n```', "not valid JSON"),
    ('```json\n[1, 2]\n```', "not a JSON object"),
])
def test_json_errors_have_short_reasons(text, reason):
  with pytest.raises(ReplyParseError, match=reason):
    extract_json(text)


# parse_with_repair.

def test_repaired_on_second_try_quotes_the_error():
  client = FakeClient(["I think 2A+2M is good.", '{"plan": "p", "layout": "2A+2M"}'])
  value, completions = parse_with_repair(client, "propose a layout", parse_layout, temperature=0.2, seed=3)
  assert value == "2A+2M"
  assert len(completions) == 2 and len(client.calls) == 2
  second_messages, kwargs = client.calls[1]
  assert kwargs == {"temperature": 0.2, "seed": 3}
  assert [m.role for m in second_messages] == ["user", "assistant", "user"]
  assert second_messages[1].content == "I think 2A+2M is good."
  assert "no JSON object found" in second_messages[2].content


def test_gives_up_after_max_repairs_and_sums_usage():
  client = FakeClient(["nope", "still nope", "never", "unused"])
  with pytest.raises(ReplyParseError) as caught:
    parse_with_repair(client, "propose", parse_layout, max_repairs=2)
  assert len(client.calls) == 3 and len(client.replies) == 1
  attempts = caught.value.attempts
  assert len(attempts) == 3
  assert total_usage(attempts) == Usage(30, 4 + 10 + 5, 30 + 19)
  # Each repair adds one assistant turn and one user message.
  assert len(client.calls[2][0]) == 5


def test_no_repair_when_max_repairs_is_zero():
  client = FakeClient(["bad"])
  with pytest.raises(ReplyParseError):
    parse_with_repair(client, "propose", parse_layout, max_repairs=0)
  assert len(client.calls) == 1


def test_client_response_error_is_repaired_and_counted():
  error = LLMResponseError("$.layout: missing required property", raw_text='{"plan": "p"}', usage=Usage(5, 3, 8))
  client = FakeClient([error, '{"layout": "AM"}'])
  value, completions = parse_with_repair(client, "propose", parse_layout)
  assert value == "AM"
  assert completions[0].text == '{"plan": "p"}'
  assert total_usage(completions).total_tokens == 8 + 10 + len('{"layout": "AM"}')
  assert "missing required property" in client.calls[1][0][-1].content


def test_other_llm_errors_propagate_at_once():
  client = FakeClient([LLMRateLimitError("slow down", status=429), '{"layout": "A"}'])
  with pytest.raises(LLMRateLimitError):
    parse_with_repair(client, "propose", parse_layout, max_repairs=3)
  assert len(client.calls) == 1
