"""A small JSON-schema validator and the JSON-reply parser every backend uses.

Providers' own structured-output parsing is not trusted (google-genai's `response.parsed` is silently None on a
mismatch), so each client validates the reply text itself. The validator covers the subset the agents use:
types object/array/string/integer/number/boolean/null, `required`, `properties`, `additionalProperties: false`,
`items`, `enum`; errors name the path, e.g. "$.layout: expected string, got integer".
"""

from __future__ import annotations

import json
import re
from typing import Any

from aira_jax.llm.base import LLMResponseError, Usage

_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def _json_type_name(value: Any) -> str:
  for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
    if _TYPE_CHECKS[name](value):
      return name
  return type(value).__name__


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
  """Returns every violation of `schema` by `value` as "path: message" strings (empty when valid)."""
  expected = schema.get("type")
  if expected is not None:
    allowed = expected if isinstance(expected, list) else [expected]
    unknown = [t for t in allowed if t not in _TYPE_CHECKS]
    if unknown:
      raise ValueError(f"{path}: unsupported schema type {unknown[0]!r}")
    if not any(_TYPE_CHECKS[t](value) for t in allowed):
      return [f"{path}: expected {' or '.join(allowed)}, got {_json_type_name(value)}"]
  errors = []
  if "enum" in schema and value not in schema["enum"]:
    errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
  if isinstance(value, dict):
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
      if key not in value:
        errors.append(f"{path}: missing required property {key!r}")
    for key, item in value.items():
      if key in properties:
        errors.extend(schema_errors(item, properties[key], f"{path}.{key}"))
      elif schema.get("additionalProperties") is False:
        errors.append(f"{path}: unexpected property {key!r}")
  if isinstance(value, list) and isinstance(schema.get("items"), dict):
    for index, item in enumerate(value):
      errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
  return errors


def validate(value: Any, schema: dict) -> None:
  """Raises ValueError listing every violation of `schema` by `value`."""
  errors = schema_errors(value, schema)
  if errors:
    raise ValueError("; ".join(errors))


def parse_json_reply(text: str, schema: dict, *, usage: Usage | None = None) -> Any:
  """Parses a model's JSON reply (a ```json fence is tolerated) and validates it against `schema`.

  Raises LLMResponseError carrying the raw text when the reply is not JSON or does not match.
  """
  fenced = _FENCE.match(text)
  try:
    value = json.loads(fenced.group(1) if fenced else text)
  except ValueError as error:
    raise LLMResponseError(f"reply is not valid JSON: {error}", raw_text=text, usage=usage) from None
  errors = schema_errors(value, schema)
  if errors:
    raise LLMResponseError(f"reply does not match the schema: {'; '.join(errors)}", raw_text=text, usage=usage)
  return value
