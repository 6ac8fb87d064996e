"""Tests for the LLM layout operator: prompts per action, one repair for bad JSON, invalid layouts as buggy
proposals that carry their text, token counts, analyses (their prompt, reply schema, bad replies, and the later
prompts that show them), and scripted end-to-end ensemble runs."""

import json
import random

import pytest

from aira_jax.agents import Journal, make_policy
from aira_jax.agents.action import Action
from aira_jax.agents.ensemble import _STEP_FAILURES, AgentSpec, Budgets, Proposal, run_ensemble
from aira_jax.agents.evaluation import EvalResult, EvaluationQueue
from aira_jax.agents.journal import Node
from aira_jax.agents.replies import ReplyParseError
from aira_jax.compose.llm_operator import (FIRST_FIX, NO_ANALYSIS, NO_MEMORY, InvalidLayoutProposal,
                                           LayoutLLMOperator, parse_analysis_reply, parse_layout_reply)
from aira_jax.compose.prompts import ANALYZE_REPLY_SCHEMA, LAYOUT_REPLY_SCHEMA, template_fields
from aira_jax.llm import Completion, LLMBudgetExceeded, LLMError, LLMResponseError, ScriptedClient, Usage

TASK = "MAD synthetic suite: in-context recall, fuzzy recall, noisy recall, selective copying, memorize, compress."


def reply(layout, plan="an idea"):
  return json.dumps({"plan": plan, "layout": layout})


def operator(replies, *, space="AM", depth=8, **kwargs):
  client = ScriptedClient(replies)
  op = LayoutLLMOperator(client, space=space, depth=depth, task_description=TASK, metric_name="mean accuracy",
                         lower_is_better=False, **kwargs)
  return op, client


def prompt_of(client, call=-1):
  return "\n".join(m.content for m in client.calls[call].messages)


def scored_journal():
  journal = Journal()
  journal.append(Node(id="good1", operator="draft", plan="attention at the bottom", payload="AAAMMMMM", metric=0.61))
  journal.append(Node(id="good2", operator="draft", plan="interleave evenly", payload="AMAMAMAM", metric=0.74))
  return journal


def test_draft_returns_the_canonical_layout_and_prompts_with_task_depth_and_memory():
  op, client = operator([reply("2A+3M+1A+2M", plan="attention early and once more in the middle")])
  proposal = op.propose(Action("draft"), scored_journal(), random.Random(0))
  assert isinstance(proposal, Proposal)
  assert proposal.payload == "AAMMMAMM"
  assert proposal.plan == "attention early and once more in the middle"
  assert proposal.tokens > 0
  assert len(client.calls) == 1 and client.calls[0].schema is not None
  system, user = client.calls[0].messages
  assert system.role == "system" and user.role == "user"
  text = prompt_of(client)
  assert TASK in text and "exactly 8 layers" in text and "{A, M}" in text
  assert "AMAMAMAM" in text and "interleave evenly" in text and "0.74" in text  # memory of good nodes
  assert text.index("good2") < text.index("good1")  # best first


def test_draft_on_an_empty_journal_says_nothing_is_known():
  op, client = operator([reply("AMAMAMAM")])
  op.propose(Action("draft"), Journal(), random.Random(0))
  assert NO_MEMORY in prompt_of(client)


def test_prompt_values_cover_every_template_placeholder():
  journal = scored_journal()
  journal.append(Node(id="bug", operator="improve", parent_ids=("good1",), payload="AAA", is_buggy=True,
                      error="wrong depth"))
  op, _ = operator([])
  for action in (Action("draft"), Action("improve", ("good2",)), Action("crossover", ("good1", "good2")),
                 Action("debug", ("bug",)), Action("analyze", ("bug",))):
    values = op.prompt_values(action, journal)
    assert set(template_fields("system")) <= set(values)
    assert set(template_fields(action.operator)) <= set(values), action.operator
    assert len(op.build_messages(action, journal)) == 2


def test_temperature_and_a_seed_from_the_rng_are_passed_on():
  op, client = operator([reply("8A")], temperature=0.3)
  op.propose(Action("draft"), Journal(), random.Random(5))
  assert client.calls[0].temperature == 0.3
  assert client.calls[0].seed == random.Random(5).randrange(2**31)


def test_a_reply_that_is_not_json_gets_one_repair():
  op, client = operator(["Sure! I think attention should go first.", reply("4A+4M")])
  proposal = op.propose(Action("draft"), Journal(), random.Random(0))
  assert proposal.payload == "AAAAMMMM" and len(client.calls) == 2
  repair = client.calls[1].messages
  assert repair[-2].role == "assistant" and "attention should go first" in repair[-2].content
  assert repair[-1].role == "user" and "could not be used" in repair[-1].content
  assert proposal.tokens > 0
  single, _ = operator([reply("4A+4M")])
  assert proposal.tokens > single.propose(Action("draft"), Journal(), random.Random(0)).tokens  # both attempts


def test_a_schema_mismatch_is_repaired_with_the_reason_quoted():
  op, client = operator([json.dumps({"plan": "forgot the layout"}), reply("8M")])
  assert op.propose(Action("draft"), Journal(), random.Random(0)).payload == "MMMMMMMM"
  assert "missing required property 'layout'" in client.calls[1].messages[-1].content


def test_two_bad_replies_fail_the_step_with_tokens_and_attempts():
  op, client = operator(["not json", "still not json"], max_repairs=1)
  with pytest.raises(LLMResponseError) as info:
    op.propose(Action("draft"), Journal(), random.Random(0))
  assert isinstance(info.value, _STEP_FAILURES)  # the ensemble records it as a buggy node
  assert len(client.calls) == 2 and len(info.value.attempts) == 2 and info.value.tokens > 0


def test_max_repairs_zero_makes_one_call():
  op, client = operator(["not json", reply("8A")], max_repairs=0)
  with pytest.raises(LLMResponseError):
    op.propose(Action("draft"), Journal(), random.Random(0))
  assert len(client.calls) == 1


@pytest.mark.parametrize("layout, space, expected", [
    ("AMA", "AM", "has 3 layers; exactly 8 are required"),
    ("4A+3M", "AM", "has 7 layers; exactly 8 are required"),
    ("AMAMXMAM", "AM", "position 4: unknown primitive 'X'"),
    ("AMAMSMAM", "AM", "position 4: primitive 'S' is outside the search space AM"),
    ("", "AM", "empty layout text"),
])
def test_an_invalid_layout_is_a_buggy_proposal_without_repair(layout, space, expected):
  op, client = operator([reply(layout, plan="bold move"), reply("8A")], space=space)
  with pytest.raises(InvalidLayoutProposal) as info:
    op.propose(Action("draft"), Journal(), random.Random(0))
  error = info.value
  assert isinstance(error, ValueError) and expected in str(error)
  assert error.payload == layout and error.plan == "bold move" and error.tokens > 0
  assert len(client.calls) == 1  # no repair round-trip for a valid reply with an invalid layout


def test_improve_prompt_shows_the_parent():
  op, client = operator([reply("AMAMAMMM")])
  proposal = op.propose(Action("improve", ("good2",)), scored_journal(), random.Random(0))
  assert proposal.payload == "AMAMAMMM"
  user = client.calls[0].messages[1].content
  assert "AMAMAMAM" in user and "1A+1M+1A+1M" in user and "interleave evenly" in user
  assert "0.74 (mean accuracy, higher is better)" in user


def test_crossover_prompt_shows_both_parents():
  op, client = operator([reply("AAAMAMAM")])
  op.propose(Action("crossover", ("good1", "good2")), scored_journal(), random.Random(0))
  user = client.calls[0].messages[1].content
  assert "First parent" in user and "AAAMMMMM" in user and "0.61" in user
  assert "Second parent" in user and "AMAMAMAM" in user and "0.74" in user


def test_debug_prompt_shows_the_failed_layout_its_error_and_the_history():
  journal = Journal()
  journal.append(Node(id="d1", operator="draft", plan="all attention", payload="AAAAAAAAA", is_buggy=True,
                      error="InvalidLayoutProposal: layout 'AAAAAAAAA' has 9 layers; exactly 8 are required"))
  journal.append(Node(id="f1", operator="debug", parent_ids=("d1",), plan="drop one layer", payload="AAAAAAAA",
                      is_buggy=True, error="out of memory", output_excerpt="step 3\nRESOURCE_EXHAUSTED: 80GiB"))
  op, client = operator([reply("AAAMMMMM"), reply("AAAAMMMM")])
  op.propose(Action("debug", ("f1",)), journal, random.Random(0))
  user = client.calls[0].messages[1].content
  assert "AAAAAAAA (runs 8A" in user and "out of memory" in user and "RESOURCE_EXHAUSTED" in user
  assert "has 9 layers" in user and "all attention" in user and "drop one layer" in user  # the chain
  op.propose(Action("debug", ("d1",)), journal, random.Random(0))
  assert FIRST_FIX in client.calls[1].messages[1].content


def test_client_errors_propagate_with_the_tokens_spent():
  op, _ = operator([LLMBudgetExceeded("token budget spent")])
  with pytest.raises(LLMBudgetExceeded):
    op.propose(Action("draft"), Journal(), random.Random(0))
  op, _ = operator(["not json", LLMError("HTTP 400: bad request")])
  with pytest.raises(LLMError, match="bad request") as info:
    op.propose(Action("draft"), Journal(), random.Random(0))
  assert info.value.tokens > 0  # the first, unusable reply still cost tokens


def test_parse_layout_reply_without_a_client_side_schema():
  completion = Completion(text='Here you go:\n{"plan": " p ", "layout": " 8A "}', parsed=None, usage=Usage(),
                          latency_s=0.0, model="m")
  assert parse_layout_reply(completion) == ("p", "8A")
  with pytest.raises(ReplyParseError, match="layout"):
    parse_layout_reply(Completion(text='{"plan": "p", "layout": 3}', parsed=None, usage=Usage(), latency_s=0.0,
                                  model="m"))


def test_constructor_rejects_bad_settings():
  client = ScriptedClient([])
  common = dict(task_description=TASK, metric_name="acc", lower_is_better=False)
  for bad in (dict(space="AQ", depth=8), dict(space="AM", depth=0), dict(space="AM", depth=8, max_repairs=-1),
              dict(space="AM", depth=8, memory_k=0)):
    with pytest.raises(ValueError):
      LayoutLLMOperator(client, **common, **bad)


def test_end_to_end_scripted_run_records_failures_and_good_nodes():
  replies = [
      reply("AAAAMMMM", plan="first"),             # draft: good
      "I would use attention.", reply("AMAMAMAM"),  # draft: repaired, good
      reply("AMA", plan="too short"),              # draft: invalid layout -> buggy
      "nope", "still nope",                         # draft: no JSON after one repair -> buggy
      reply("AMMMMMMM", plan="mostly MLP"),        # draft: good
      reply("AAAAAMMM", plan="step six"),          # improve or debug: good
  ]
  op, client = operator(replies)
  journal = Journal()
  queue = EvaluationQueue(lambda p: EvalResult(metric=p.count("A") / len(p)))
  report = run_ensemble([AgentSpec("llm", make_policy("greedy"), op)], journal, queue, Budgets(steps_per_agent=6))
  assert report.steps == {"llm": 6} and not report.crashes and client.remaining == 0
  buggy = journal.buggy_nodes()
  assert [n.operator for n in buggy] == ["draft", "draft"]
  assert "InvalidLayoutProposal" in buggy[0].error and "has 3 layers; exactly 8 are required" in buggy[0].error
  assert "LLMResponseError" in buggy[1].error and "not valid JSON" in buggy[1].error
  good = journal.good_nodes()
  assert [n.payload for n in good] == ["AAAAMMMM", "AMAMAMAM", "AMMMMMMM", "AAAAAMMM"]
  assert all(n.tokens > 0 for n in good)
  assert journal.best(1)[0].metric == pytest.approx(5 / 8)


def analysis_reply(analysis="AAAAMMMM (4A:4M) beat AAAMMMMM by 0.13; more attention helped.",
                   directions="try 5A:3M with attention at the bottom"):
  return json.dumps({"analysis": analysis, "next_directions": directions})


def test_analyze_asks_with_the_statistics_and_parses_the_reply_with_its_own_schema():
  journal = scored_journal()
  journal.append(Node(id="bug", operator="improve", parent_ids=("good1",), payload="AAA", is_buggy=True,
                      error="InvalidLayoutProposal: layout 'AAA' has 3 layers", plan="shorter"))
  op, client = operator([analysis_reply()] * 2)
  proposal = op.analyze(Action("analyze", ("bug",)), journal, random.Random(0))
  assert proposal.payload == "AAAAMMMM (4A:4M) beat AAAMMMMM by 0.13; more attention helped."
  assert proposal.plan == "try 5A:3M with attention at the bottom" and proposal.tokens > 0
  [call] = client.calls
  assert call.schema == ANALYZE_REPLY_SCHEMA and call.schema != LAYOUT_REPLY_SCHEMA
  system, user = call.messages
  assert system.role == "system" and user.content.startswith("# Analyse the results so far")
  text = user.content
  assert "3 steps: 2 scored (2 distinct layouts), 1 failed (InvalidLayoutProposal x1)" in text  # the statistics
  assert "By attention share: 25-50% n=1 best 0.61 mean 0.61; 50-75% n=1 best 0.74" in text
  assert "- improve bug: AAA (runs 3A, ratio 3A) -> not scored (failed: InvalidLayoutProposal" in text  # recent
  assert "- draft good2: AMAMAMAM (runs 1A+1M+1A+1M+1A+1M+1A+1M, ratio 4A:4M) -> 0.74 (mean accuracy" in text
  assert "mean accuracy (higher is better)" in text and NO_ANALYSIS in text
  assert op.propose(Action("analyze", ("bug",)), journal, random.Random(0)) == proposal  # propose hands it on
  with pytest.raises(ValueError, match="answers an 'analyze' action"):
    op.analyze(Action("draft"), journal, random.Random(0))


def test_later_prompts_show_the_latest_analysis():
  journal = scored_journal()
  op, client = operator([reply("AMAMAMMM")] * 4)
  op.propose(Action("draft"), journal, random.Random(0))
  assert "Your latest analysis of the results:\n" + NO_ANALYSIS in prompt_of(client)
  journal.append(Node(id="an1", operator="analyze", parent_ids=("good2",), payload="interleaving won: 0.74 vs 0.61",
                      plan="interleave with more attention"))
  for action in (Action("draft"), Action("improve", ("good2",)), Action("crossover", ("good1", "good2"))):
    op.propose(action, journal, random.Random(0))
    text = prompt_of(client)
    assert ("(analysis an1, written after 2 steps)\ninterleaving won: 0.74 vs 0.61\nNext directions: interleave "
            "with more attention") in text, action.operator
    assert NO_ANALYSIS not in text


def test_a_bad_analyze_reply_is_repaired_once_then_fails_the_step_with_its_tokens():
  op, client = operator([reply("AMAMAMAM"), analysis_reply()])  # a layout is not an analysis: repaired
  assert op.analyze(Action("analyze", ("good1",)), scored_journal(), random.Random(0)).payload.startswith("AAAAM")
  assert "missing required property 'analysis'" in client.calls[1].messages[-1].content
  op, client = operator([analysis_reply(analysis="  "), "not json"])
  with pytest.raises(LLMResponseError) as info:
    op.analyze(Action("analyze", ("good1",)), scored_journal(), random.Random(0))
  assert "the analysis is empty" in client.calls[1].messages[-1].content
  assert isinstance(info.value, _STEP_FAILURES) and len(client.calls) == 2 and info.value.tokens > 0
  with pytest.raises(ReplyParseError, match="analysis is empty"):
    parse_analysis_reply(Completion(text=analysis_reply(analysis=""), parsed=None, usage=Usage(), latency_s=0.0,
                                    model="m"))


def test_end_to_end_scripted_run_with_analyses():
  replies = [
      reply("AAAAMMMM", plan="first"), reply("AMAMAMAM", plan="second"),
      "no JSON here", "none here either",                  # the first analysis fails: a buggy analyze node
      reply("AMMMMMMM", plan="third"), reply("AAAAAMMM", plan="fourth"),
      analysis_reply("4 layouts; 5A:3M best at 0.625.", "more attention"),
      reply("AAAAAAMM", plan="fifth"),
  ]
  op, client = operator(replies)
  journal = Journal()
  agent = AgentSpec("llm", make_policy("greedy", num_drafts=5), op, analyze_every=2)
  report = run_ensemble([agent], journal, EvaluationQueue(lambda p: EvalResult(metric=p.count("A") / len(p))),
                        Budgets(steps_per_agent=5))
  assert report.steps == {"llm": 5} and not report.crashes and client.remaining == 0
  assert "".join("A" if n.is_analysis else "s" for n in journal.nodes) == "ssAssAs"
  failed, written = journal.analyses()
  assert failed.is_buggy and "LLMResponseError" in failed.error and failed.tokens > 0 and failed.metric is None
  assert not written.is_buggy and written.metric is None and written.payload == "4 layouts; 5A:3M best at 0.625."
  assert written.plan == "more attention" and written.tokens > 0
  assert [call.schema for call in client.calls] == [LAYOUT_REPLY_SCHEMA] * 2 + [ANALYZE_REPLY_SCHEMA] * 2 + \
      [LAYOUT_REPLY_SCHEMA] * 2 + [ANALYZE_REPLY_SCHEMA] + [LAYOUT_REPLY_SCHEMA]
  last = prompt_of(client)
  assert "4 layouts; 5A:3M best at 0.625.\nNext directions: more attention" in last
  assert "written after 4 steps" in last
