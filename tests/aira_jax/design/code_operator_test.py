"""The LLM design operator with scripted replies: prompts, whole files, edits, repairs, failures, and analyses
(their prompt with the journal's statistics, the shared reply schema, bad replies, later prompts quoting the
latest one, and a scripted run that writes them on schedule without evaluating them)."""

import json
import random

import pytest

from aira_jax.agents import Action, AgentSpec, Budgets, EvalResult, Journal, make_policy, run_ensemble
from aira_jax.agents.evaluation import EvaluationQueue
from aira_jax.agents.journal import Node
from aira_jax.agents.templates import template_fields
from aira_jax.agents.replies import ANALYZE_REPLY_SCHEMA, ReplyParseError
from aira_jax.design.code_operator import NO_ANALYSIS, PROMPT_NAMES, PROMPT_PACKAGE, CodeLLMOperator
from aira_jax.design.tasks.base import DesignTask
from aira_jax.llm.base import LLMResponseError
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
                                               ("crossover", ("good", "good")), ("analyze", ("bad",))])
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


def analysis_reply(analysis="WINDOW=8 scored 0.4; the import failed on a syntax error.",
                   directions="fix the syntax, then try WINDOW=16"):
  return json.dumps({"analysis": analysis, "next_directions": directions})


def prompt_of(client, call=-1):
  return "\n".join(m.content for m in client.calls[call].messages)


def test_analyze_asks_with_the_statistics_and_the_shared_schema():
  client = ScriptedClient([analysis_reply()] * 2)
  operator = CodeLLMOperator(client, TASK)
  proposal = operator.analyze(Action("analyze", ("bad",)), _journal(), random.Random(0))
  assert proposal.payload == "WINDOW=8 scored 0.4; the import failed on a syntax error."
  assert proposal.plan == "fix the syntax, then try WINDOW=16" and proposal.tokens > 0
  [call] = client.calls
  assert call.schema == ANALYZE_REPLY_SCHEMA
  system, user = call.messages
  assert "This step writes no code" in system.content and "```python code block" not in system.content
  assert user.content.startswith("# Analyse the results so far")
  text = user.content
  assert "2 steps: 1 scored (1 distinct candidates), 1 failed (stage import x1). Metric: higher is better." in text
  assert "By seed: no seed line n=1 best 0.4 mean 0.4." in text  # the statistics of design/analysis.py
  assert "- draft good: no seed line -> 0.4; plan: identity mixer" in text  # recent steps
  assert "- improve bad: no seed line -> nothing (failed: stage import failed: SyntaxError" in text
  assert "val_accuracy (higher is better)" in text and NO_ANALYSIS in text
  assert operator.propose(Action("analyze", ("bad",)), _journal(), random.Random(0)) == proposal
  with pytest.raises(ValueError, match="answers an 'analyze' action"):
    operator.analyze(Action("draft"), _journal(), random.Random(0))


def test_a_bad_analyze_reply_is_repaired_once_then_fails_the_step_with_its_tokens():
  client = ScriptedClient(["Plan: x\n```python\nX = 1\n```", analysis_reply()])  # code is not an analysis
  proposal = CodeLLMOperator(client, TASK).analyze(Action("analyze", ("good",)), _journal(), random.Random(0))
  assert proposal.payload.startswith("WINDOW=8") and len(client.calls) == 2
  client = ScriptedClient([analysis_reply(analysis="  "), "still not json"])
  with pytest.raises(LLMResponseError) as info:
    CodeLLMOperator(client, TASK).analyze(Action("analyze", ("good",)), _journal(), random.Random(0))
  assert "the analysis is empty" in client.calls[1].messages[-1].content and info.value.tokens > 0


def test_later_prompts_quote_the_latest_analysis():
  journal = _journal()
  client = ScriptedClient(["Plan: p\n```python\nX = 1\n```"] * 4)
  operator = CodeLLMOperator(client, TASK)
  operator.propose(Action("draft"), journal, random.Random(0))
  assert "Your latest analysis of the results:\n" + NO_ANALYSIS in prompt_of(client)
  journal.append(Node(id="an1", operator="analyze", parent_ids=("bad",), payload="the identity mixer scored 0.4",
                      plan="try attention"))
  for action in (Action("draft"), Action("improve", ("good",)), Action("crossover", ("good", "good"))):
    operator.propose(action, journal, random.Random(0))
    text = prompt_of(client)
    assert ("(analysis an1, written after 2 steps)\nthe identity mixer scored 0.4\nNext directions: try attention"
            in text), action.operator
    assert NO_ANALYSIS not in text


def test_a_scripted_run_writes_analyses_on_schedule_without_evaluating_them():
  files = [f"Plan: version {i}\n```python\nWINDOW = {i}\n```" for i in range(5)]
  replies = [files[0], files[1], "no JSON here", "none here either",  # the first analysis fails: a buggy node
             files[2], files[3], analysis_reply("4 files; WINDOW=3 best.", "larger windows"), files[4]]
  client = ScriptedClient(replies)
  evaluated = []

  def evaluate(code):
    evaluated.append(code)
    return EvalResult(metric=float(code.split("=")[1]))

  journal = Journal()
  agent = AgentSpec("llm", make_policy("greedy", num_drafts=5), CodeLLMOperator(client, TASK), analyze_every=2)
  report = run_ensemble([agent], journal, EvaluationQueue(evaluate), Budgets(steps_per_agent=5))
  assert report.steps == {"llm": 5} and not report.crashes and client.remaining == 0
  assert "".join("A" if n.is_analysis else "s" for n in journal.nodes) == "ssAssAs"
  assert len(evaluated) == 5 and all(code.startswith("WINDOW = ") for code in evaluated)
  failed, written = journal.analyses()
  assert failed.is_buggy and "LLMResponseError" in failed.error and failed.tokens > 0 and failed.metric is None
  assert (written.payload, written.plan, written.metric, written.is_buggy) == (
      "4 files; WINDOW=3 best.", "larger windows", None, False)
  assert [call.schema for call in client.calls] == [None] * 2 + [ANALYZE_REPLY_SCHEMA] * 2 + [None] * 2 + \
      [ANALYZE_REPLY_SCHEMA, None]
  assert "4 files; WINDOW=3 best." in prompt_of(client)  # the last draft quotes the analysis
