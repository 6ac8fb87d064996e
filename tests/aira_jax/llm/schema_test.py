"""The JSON-schema validator and the JSON-reply parser: types, required, properties, items, enum, paths."""

import pytest

from aira_jax.llm import LLMResponseError, parse_json_reply, schema_errors, validate

LAYOUT_SCHEMA = {
    "type": "object",
    "required": ["layout", "reason"],
    "properties": {
        "layout": {"type": "string"},
        "reason": {"type": "string"},
        "depth": {"type": "integer"},
        "ratio": {"type": "number"},
        "final": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["A", "M", "S"]}},
    },
}


def test_valid_value_has_no_errors():
  value = {"layout": "AAM", "reason": "r", "depth": 3, "ratio": 0.5, "final": True, "tags": ["A", "M"]}
  assert schema_errors(value, LAYOUT_SCHEMA) == []
  validate(value, LAYOUT_SCHEMA)


@pytest.mark.parametrize("value, expected", [
    ({"layout": 3, "reason": "r"}, "$.layout: expected string, got integer"),
    ({"layout": "A"}, "$: missing required property 'reason'"),
    ({"layout": "A", "reason": "r", "depth": 2.5}, "$.depth: expected integer, got number"),
    ({"layout": "A", "reason": "r", "depth": True}, "$.depth: expected integer, got boolean"),
    ({"layout": "A", "reason": "r", "ratio": "x"}, "$.ratio: expected number, got string"),
    ({"layout": "A", "reason": "r", "final": 1}, "$.final: expected boolean, got integer"),
    ({"layout": "A", "reason": "r", "tags": ["A", "X"]}, "$.tags[1]: 'X' is not one of ['A', 'M', 'S']"),
    ({"layout": "A", "reason": "r", "tags": "A"}, "$.tags: expected array, got string"),
    ([1], "$: expected object, got array"),
])
def test_errors_name_the_path(value, expected):
  assert expected in schema_errors(value, LAYOUT_SCHEMA)


def test_all_errors_are_reported_and_integer_counts_as_number():
  errors = schema_errors({"layout": 1}, LAYOUT_SCHEMA)
  assert errors == ["$: missing required property 'reason'", "$.layout: expected string, got integer"]
  assert schema_errors(3, {"type": "number"}) == []
  assert schema_errors(None, {"type": ["string", "null"]}) == []


def test_additional_properties_false():
  schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
  assert schema_errors({"a": 1, "b": 2}, schema) == ["$: unexpected property 'b'"]


def test_unsupported_type_is_a_schema_bug():
  with pytest.raises(ValueError, match="unsupported schema type 'tuple'"):
    schema_errors(1, {"type": "tuple"})


def test_parse_json_reply_accepts_plain_and_fenced_json():
  assert parse_json_reply('{"layout": "A", "reason": "r"}', LAYOUT_SCHEMA)["layout"] == "A"
  assert parse_json_reply('```json\n{"layout": "A", "reason": "r"}\n```', LAYOUT_SCHEMA)["reason"] == "r"


def test_parse_json_reply_errors_carry_the_raw_text():
  with pytest.raises(LLMResponseError, match="not valid JSON") as info:
    parse_json_reply("Sure! Here is the layout: AAM", LAYOUT_SCHEMA)
  assert info.value.raw_text == "Sure! Here is the layout: AAM"
  with pytest.raises(LLMResponseError, match=r"\$\.layout: expected string") as info:
    parse_json_reply('{"layout": 1, "reason": "r"}', LAYOUT_SCHEMA)
  assert info.value.raw_text == '{"layout": 1, "reason": "r"}'
