"""The LLM design operator with scripted replies: prompts, whole files, edits, repairs, failures."""

import random

import pytest

from aira_jax.agents import Action, Journal
from aira_jax.agents.journal import Node
from aira_jax.agents.templates import template_fields
from aira_jax.agents.replies import ReplyParseError
from aira_jax.design.code_operator import PROMPT_NAMES, PROMPT_PACKAGE, CodeLLMOperator
from aira_jax.design.tasks.base import DesignTask
from aira_jax.llm.scripted import ScriptedClient

TASK = DesignTask(name="toy", description="Write `model.py` with a Mixer (batch, seq, d) -> same shape.",
                  filename="model.py", template="class Mixer:\n  pass\n", metric="val_accuracy",
                  lower_is_better=False, harness_module="unused")
PARENT = "WINDOW = 8\n\ndef mix(x):\n  return x\n"


def _journal():
  journal = Journal()
  journal.append(Node(id="good", operator="draft", payload=PARENT, metric=0.4, plan="identity mixer"))
  journal.append(Node(id="bad", operator="improve", parent_ids=("good",), payload=PARENT + "oops(\n",
                      is_buggy=True, error="stage import failed: SyntaxError: '(' was never closed",
                      output_excerpt="Traceback ... SyntaxError"))
  return journal


@pytest.mark.parametrize("operator, parents", [("draft", ()), ("improve", ("good",)), ("debug", ("bad",)),
                                               ("crossover", ("good", "good"))])
def test_prompts_fill_every_field_and_show_what_matters(operator, parents):
  values = CodeLLMOperator(ScriptedClient([]), TASK).prompt_values(Action(operator, parents), _journal())
  for name in ("system", operator):
    assert set(template_fields(name, PROMPT_PACKAGE, PROMPT_NAMES)) <= set(values)
  messages = CodeLLMOperator(ScriptedClient([]), TASK).build_messages(Action(operator, parents), _journal())
  text = messages[0].content + messages[1].content
  assert "Mixer (batch, seq, d)" in text and "val_accuracy" in text
  if operator == "debug":
    assert "SyntaxError" in text and "oops(" in text
  if operator == "improve":
    assert "identity mixer" in text and "0.4" in text


def test_whole_file_reply_and_repair():
  client = ScriptedClient(["I think we should use attention.", "Plan: add a residual\n```python\nX = 1\n```"])
  proposal = CodeLLMOperator(client, TASK).propose(Action("draft"), _journal(), random.Random(0))
  assert proposal.payload == "X = 1" and proposal.plan == "add a residual" and proposal.tokens > 0
  assert len(client.calls) == 2 and "could not be used" in client.calls[1].messages[-1].content


def test_diff_edits_apply_to_the_parent():
  reply = "Widen the window.\n<<<<<<< SEARCH\nWINDOW = 8\n=======\nWINDOW = 16\n>>>>>>> REPLACE\n"
  operator = CodeLLMOperator(ScriptedClient([reply]), TASK, edits="diff")
  proposal = operator.propose(Action("improve", ("good",)), _journal(), random.Random(0))
  assert proposal.payload == PARENT.replace("WINDOW = 8", "WINDOW = 16")


def test_unusable_replies_fail_the_step_with_tokens():
  client = ScriptedClient(["no code here", "still none"])
  with pytest.raises(ReplyParseError, match="no code found") as info:
    CodeLLMOperator(client, TASK).propose(Action("draft"), _journal(), random.Random(0))
  assert info.value.tokens > 0
