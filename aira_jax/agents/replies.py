"""Reading what an LLM wrote: fenced code blocks, JSON objects, and one repair round-trip when a reply is bad.

Operators ask for a layout as JSON or for a file as a fenced code block; models wrap those in prose, send
several blocks, or forget the fence. The extractors here apply one documented rule each and raise
`ReplyParseError` with a short reason a model can act on. `parse_with_repair` sends that reason back as a
follow-up message ("your reply could not be used because ...; answer again") a bounded number of times, so a
slip costs one more call instead of a failed node. Every attempt's tokens are kept on the returned completions.
`ANALYZE_REPLY_SCHEMA` and `parse_analysis_reply` are the reply of the analyze operator, the same in every
pipeline that has one (compose and design).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

from aira_jax.llm.base import Completion, LLMResponseError, Message, Usage, as_messages
from aira_jax.llm.schema import schema_errors

_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^\n`]*$")


class ReplyParseError(ValueError):
  """A reply has no usable code block or JSON object; `reason` is short enough to quote back to the model."""

  def __init__(self, reason: str):
    super().__init__(reason)
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class CodeBlock:
  """One fenced block: `language` is the info string's first word, lower-cased ("" when absent)."""

  language: str
  code: str


def code_blocks(text: str) -> list[CodeBlock]:
  """Every fenced block (``` or ~~~, three or more) in order of appearance.

  A block closes at a line holding only the same fence character, at least as many times as it opened.
  Raises ReplyParseError for a block that never closes (the reply was probably cut short).
  """
  blocks = []
  lines = text.split("\n")
  i = 0
  while i < len(lines):
    match = _FENCE_OPEN.match(lines[i])
    if not match:
      i += 1
      continue
    fence = match.group("fence")
    closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    body_start = i + 1
    j = body_start
    while j < len(lines) and not closing.match(lines[j]):
      j += 1
    if j == len(lines):
      raise ReplyParseError(f"the code block opened on line {i + 1} is never closed (was the reply cut short?)")
    blocks.append(CodeBlock(match.group("info").lower(), "\n".join(lines[body_start:j])))
    i = j + 1
  return blocks


def extract_code_block(text: str, language: str | None = None) -> str:
  """The code of the one fenced block that answers, without its fences.

  Rule: the candidates are the blocks tagged `language` (case-insensitive); when none is tagged so, or when
  `language` is None, every block is a candidate (so an untagged block still counts). Identical candidates
  count once. One candidate is the answer. With several, the LAST one is the answer if it is also the longest
  (the usual "a snippet, then the whole file" reply); otherwise the reply is ambiguous.

  Raises:
    ReplyParseError: no block, an unclosed block, or several candidates where the last is not the longest.
  """
  blocks = code_blocks(text)
  what = f"```{language} block" if language else "fenced code block"
  if not blocks:
    raise ReplyParseError(f"no {what} found; put the whole answer in one {what}")
  candidates = blocks
  if language is not None:
    tagged = [b for b in blocks if b.language == language.lower()]
    candidates = tagged or blocks
  unique = list(dict.fromkeys(b.code for b in candidates))
  if len(unique) == 1:
    return unique[0]
  last = candidates[-1].code
  if all(len(code) < len(last) for code in unique if code != last):
    return last
  raise ReplyParseError(f"found {len(unique)} different {what}s and cannot tell which is the answer; "
                        f"send exactly one {what}")


def _objects_in(text: str) -> list[Any]:
  """Top-level JSON objects in free text, left to right (an object nested in another is not separate)."""
  decoder = json.JSONDecoder()
  found = []
  position = text.find("{")
  while position != -1:
    try:
      value, end = decoder.raw_decode(text, position)
    except json.JSONDecodeError:
      position = text.find("{", position + 1)
      continue
    if isinstance(value, dict):
      found.append(value)
    position = text.find("{", end)
  return found


def extract_json(text: str) -> dict[str, Any]:
  """The JSON object a reply carries.

  Rule: if the reply has ```json blocks, the last one must parse and hold an object. Otherwise every other
  fenced block and then the plain text are searched for top-level {...} objects (prose before, between and
  after is ignored), and the last object found is the answer.

  Raises:
    ReplyParseError: no object found, or the ```json block does not parse (with the decoder's position).
  """
  stripped = text.strip()
  if not stripped:
    raise ReplyParseError("the reply is empty; answer with one JSON object")
  blocks = code_blocks(text)
  json_blocks = [b for b in blocks if b.language == "json"]
  if json_blocks:
    body = json_blocks[-1].code
    try:
      value = json.loads(body)
    except json.JSONDecodeError as error:
      raise ReplyParseError(f"the ```json block is not valid JSON: {error.msg} at line {error.lineno} "
                            f"column {error.colno}") from None
    if not isinstance(value, dict):
      raise ReplyParseError(f"the ```json block holds a {type(value).__name__}, not a JSON object")
    return value
  for block in reversed(blocks):
    objects = _objects_in(block.code)
    if objects:
      return objects[-1]
  objects = _objects_in(text)
  if objects:
    return objects[-1]
  if "{" in text:
    raise ReplyParseError("found '{' but no complete, valid JSON object (check quotes, commas and braces)")
  raise ReplyParseError("no JSON object found; answer with one JSON object")


def strings_schema(*names: str) -> dict[str, Any]:
  """The JSON schema of an object with exactly these string fields, all required."""
  return {"type": "object", "properties": {name: {"type": "string"} for name in names}, "required": list(names),
          "additionalProperties": False}


ANALYZE_REPLY_SCHEMA: dict[str, Any] = strings_schema("analysis", "next_directions")
"""Reply of analyze: what the results so far show (a few sentences, with numbers) and where to search next. It
becomes an "analyze" node (payload = analysis, plan = next_directions) that later prompts quote
(`aira_jax.agents.memory.analysis_memory`)."""


def parse_analysis_reply(completion: Completion) -> tuple[str, str]:
  """(analysis, next directions) of an analyze reply; ReplyParseError when it does not match
  `ANALYZE_REPLY_SCHEMA` or the analysis is empty. Uses the client's validated `parsed` value when there is
  one, else finds the JSON in the text."""
  value = completion.parsed if completion.parsed is not None else extract_json(completion.text)
  errors = schema_errors(value, ANALYZE_REPLY_SCHEMA)
  if errors:
    raise ReplyParseError(f"the JSON does not match the requested format: {'; '.join(errors)}")
  if not value["analysis"].strip():
    raise ReplyParseError("the analysis is empty; write a few sentences about the results")
  return value["analysis"].strip(), value["next_directions"].strip()


def total_usage(completions: list[Completion]) -> Usage:
  """Token counts summed over completions (e.g. every attempt of `parse_with_repair`)."""
  return Usage(sum(c.usage.prompt_tokens for c in completions),
               sum(c.usage.completion_tokens for c in completions),
               sum(c.usage.total_tokens for c in completions))


def repair_message(error: Exception) -> str:
  """The follow-up user message that quotes why the last reply could not be used."""
  reason = getattr(error, "reason", None) or str(error)
  return (f"Your previous reply could not be used: {reason}\n"
          "Reply again with the complete, corrected answer in the requested format, and nothing else.")


def parse_with_repair(client, messages, parse: Callable[[Completion], Any], *, max_repairs: int = 1,
                      **generate_kwargs) -> tuple[Any, list[Completion]]:
  """Asks `client`, parses the reply, and asks again with the error quoted when the reply is unusable.

  Each repair appends the bad reply (as an assistant turn) and ONE user message quoting the error, then calls
  `client.generate` again with the same `generate_kwargs` (schema, temperature, max_tokens, seed).
  `ReplyParseError` from `parse` and `LLMResponseError` from the client (bad JSON, schema mismatch) trigger a
  repair; other errors (rate limits, budgets, ...) propagate at once.

  Args:
    client: an `LLMClient`.
    messages: the prompt (a string or Messages).
    parse: maps a Completion to the value wanted; raises ReplyParseError when it cannot.
    max_repairs: follow-up attempts after the first call (0 = no repair).

  Returns:
    (parsed value, completions of every attempt in order). A client-side LLMResponseError attempt appears as
    a Completion with the raw text and the usage the error carried, so `total_usage(completions)` counts
    every token spent.

  Raises:
    The last ReplyParseError / LLMResponseError once `max_repairs` repairs failed; its `attempts` attribute
    holds the completions as above.
  """
  if max_repairs < 0:
    raise ValueError(f"max_repairs must be >= 0, got {max_repairs}")
  conversation = as_messages(messages)
  completions: list[Completion] = []
  for attempt in range(max_repairs + 1):
    try:
      completion = client.generate(conversation, **generate_kwargs)
    except LLMResponseError as error:
      completion = Completion(text=error.raw_text or "", parsed=None, usage=error.usage or Usage(),
                              latency_s=0.0, model=getattr(client, "model", ""))
      completions.append(completion)
      failure: Exception = error
    else:
      completions.append(completion)
      try:
        return parse(completion), completions
      except ReplyParseError as error:
        failure = error
    if attempt == max_repairs:
      failure.attempts = completions
      raise failure
    previous = [Message("assistant", completion.text)] if completion.text else []
    conversation = [*conversation, *previous, Message("user", repair_message(failure))]
  raise AssertionError("unreachable")


class UsageRecorder:
  """Wraps a client to sum the tokens of every call, including replies that failed validation."""

  def __init__(self, client):
    self.client = client
    self.model = getattr(client, "model", "")
    self.total_tokens = 0

  def generate(self, messages, **kwargs) -> Completion:
    try:
      completion = self.client.generate(messages, **kwargs)
    except LLMResponseError as error:
      self.total_tokens += (error.usage or Usage()).total_tokens
      raise
    self.total_tokens += completion.usage.total_tokens
    return completion
