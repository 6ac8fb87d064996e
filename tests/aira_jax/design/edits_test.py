"""Reading code from replies: whole files, SEARCH/REPLACE edits, plans."""

import pytest

from aira_jax.agents.replies import ReplyParseError
from aira_jax.design.edits import apply_edits, code_from_reply, plan_of

SOURCE = "def f(x):\n  return x + 1\n\n\ndef g(x):\n  return 2 * x\n"


def _edit(search, replace):
  return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_edits_apply_in_order():
  reply = "Plan: double then add\n" + _edit("  return x + 1", "  return x + 2") + "\n" + _edit(
      "  return 2 * x", "  return 3 * x")
  assert apply_edits(SOURCE, reply) == SOURCE.replace("x + 1", "x + 2").replace("2 * x", "3 * x")
  assert plan_of(reply) == "double then add"


@pytest.mark.parametrize("search, reason", [("  return x + 7", "does not occur"), ("  return", "occurs 2 times")])
def test_an_edit_that_does_not_match_once_is_rejected(search, reason):
  with pytest.raises(ReplyParseError, match=reason):
    apply_edits(SOURCE, _edit(search, "  pass"))


def test_whole_file_and_fallbacks():
  reply = "Use a bigger step.\n```python\nprint(1)\n```\n"
  assert code_from_reply(reply, SOURCE, edits=True) == "print(1)"  # no edit blocks: the code block counts
  assert code_from_reply(reply, None, edits=False) == "print(1)"
  assert plan_of(reply) == "Use a bigger step."
  with pytest.raises(ReplyParseError, match="no code found"):
    code_from_reply("I would change the window.", SOURCE, edits=False)
  assert code_from_reply(_edit("  return 2 * x", "  return x"), SOURCE, edits=True).endswith("  return x\n")
