"""The LLM operator of AIRA-Design: asks a model for a new version of the task's file and hands it to the search.

`CodeLLMOperator.propose(action, journal, rng)` follows the operator contract of `aira_jax.agents.ensemble`:
draft / improve / debug / crossover prompts (`aira_jax/design/prompts/*.md`) carry the task description and
interface, the memory of the best candidates, the parent code, and for debug the failed stage with its error
and the chain of earlier fixes. The reply's code is one ```python block, or (with `edits="diff"`) SEARCH/REPLACE
edits of the parent's file (edits.py). A reply with no usable code gets one repair round-trip quoting why;
past that the step fails (a buggy node the agent sees next). Code is never run here: the sandbox runs it.
Draft, improve and crossover prompts also quote the agent's latest analysis (`analysis_memory`).

`CodeLLMOperator.analyze` answers the ensemble's scheduled "analyze" action: the analyze prompt shows the
journal's statistics (design/analysis.py, the numbers the built-in agent writes), the steps since the previous
analysis and the memory, and asks for JSON matching the shared `ANALYZE_REPLY_SCHEMA` ({"analysis",
"next_directions"}), which becomes the analysis node's text and directions. A reply that is not usable JSON (or
whose analysis is empty) gets the same repair round-trip; past that the step fails (a buggy analyze node, which
no policy debugs). Errors carry `tokens`, the tokens spent on every attempt.
"""

from __future__ import annotations

import random
from typing import Any

from aira_jax.agents.action import Action
from aira_jax.agents.analysis_text import recent_steps
from aira_jax.agents.ensemble import Proposal
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import analysis_memory, debug_chain, summarize_good_nodes
from aira_jax.agents.templates import render
from aira_jax.agents.replies import (ANALYZE_REPLY_SCHEMA, ReplyParseError, UsageRecorder, parse_analysis_reply,
                                    parse_with_repair)
from aira_jax.design.analysis import analyze_candidates, describe_candidate
from aira_jax.design.knobs import seed_name
from aira_jax.design.edits import EDITS_FORMAT, WHOLE_FILE_FORMAT, code_from_reply, plan_of
from aira_jax.design.tasks.base import DesignTask
from aira_jax.llm.base import LLMError, Message

PROMPT_PACKAGE = "aira_jax.design"
PROMPT_NAMES = ("system", "draft", "improve", "debug", "crossover", "analyze")
NO_MEMORY = "Nothing yet: no candidate has been scored so far."
NO_ANALYSIS = "None yet."
FIRST_FIX = "None: this is the first attempt to fix it."
MAX_ERROR_CHARS = 3000
ANALYSIS_FORMAT = "This step writes no code: answer with the JSON object the request asks for, and nothing else."


class CodeLLMOperator:
  """Writes the task's file with an LLM.

  Args:
    client: an LLM client (see aira_jax.llm.make_client).
    task: the design task (description, filename, template, metric).
    edits: "whole" (the model sends the whole file) or "diff" (SEARCH/REPLACE edits of the parent's file).
    max_repairs: repair round-trips for a reply without usable code.
    memory_k / max_memory_chars: how many of the best candidates the prompts show, and in how many chars.
  """

  def __init__(self, client, task: DesignTask, *, edits: str = "whole", max_repairs: int = 1,
               temperature: float | None = None, memory_k: int = 3, max_memory_chars: int = 12000):
    if edits not in ("whole", "diff"):
      raise ValueError(f"edits must be 'whole' or 'diff', got {edits!r}")
    self.client, self.task, self.edits = client, task, edits
    self.max_repairs, self.temperature = max_repairs, temperature
    self.memory_k, self.max_memory_chars = memory_k, max_memory_chars

  def _score(self, node: Node) -> str:
    if node.metric is None:
      return f"nothing (failed: {(node.error or 'no error recorded')[:300]})"
    return f"{node.metric:.6g}"

  def _recent_steps(self, journal: Journal) -> str:
    """The steps since the previous analysis, one line each (`agents.analysis_text.recent_steps`)."""
    return recent_steps(journal, describe_candidate, self._score)

  def prompt_values(self, action: Action, journal: Journal) -> dict[str, Any]:
    """Every field the system prompt and `action.operator`'s template use."""
    task = self.task
    memory = summarize_good_nodes(journal, k=self.memory_k, max_chars=self.max_memory_chars)
    answer_format = EDITS_FORMAT if self.edits == "diff" and action.operator != "draft" else WHOLE_FILE_FORMAT
    values: dict[str, Any] = {
        "filename": task.filename, "task": task.description, "metric_name": task.metric,
        "direction": "lower is better" if task.lower_is_better else "higher is better",
        "answer_format": ANALYSIS_FORMAT if action.operator == "analyze" else answer_format,
        "memory": memory or NO_MEMORY, "template": task.template,
        "analysis": analysis_memory(journal, max_chars=self.max_memory_chars) or NO_ANALYSIS,
    }
    parents = [journal.get(p) for p in action.parent_ids]
    if action.operator == "improve":
      values.update(parent_code=parents[0].payload, parent_metric=self._score(parents[0]),
                    parent_plan=parents[0].plan or "(none recorded)")
    elif action.operator == "crossover":
      values.update(code_a=parents[0].payload, metric_a=self._score(parents[0]), code_b=parents[1].payload,
                    metric_b=self._score(parents[1]))
    elif action.operator == "debug":
      buggy = parents[0]
      error = (buggy.error or "(no error recorded)") + (f"\nOutput tail:\n{buggy.output_excerpt[-MAX_ERROR_CHARS:]}"
                                                        if buggy.output_excerpt else "")
      history = FIRST_FIX if journal.debug_depth(buggy.id) == 0 else debug_chain(journal, buggy.id)
      values.update(buggy_code=buggy.payload or "(no code was recorded)", error=error, debug_history=history)
    elif action.operator == "analyze":
      seeds = [n for n in (seed_name(source) for source in task.seed_sources().values()) if n is not None]
      values.update(statistics=analyze_candidates(journal, seeds=seeds, lower_is_better=task.lower_is_better).text,
                    recent=self._recent_steps(journal))
    return values

  def build_messages(self, action: Action, journal: Journal) -> list[Message]:
    values = self.prompt_values(action, journal)
    return [Message("system", render("system", values, PROMPT_PACKAGE, PROMPT_NAMES)),
            Message("user", render(action.operator, values, PROMPT_PACKAGE, PROMPT_NAMES))]

  def _parent_source(self, action: Action, journal: Journal) -> str | None:
    if action.operator in ("improve", "debug") and action.parent_ids:
      return journal.get(action.parent_ids[0]).payload or None
    return None

  def _generate_kwargs(self, rng: random.Random) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"seed": rng.randrange(2**31)}
    if self.temperature is not None:
      kwargs["temperature"] = self.temperature
    return kwargs

  def analyze(self, action: Action, journal: Journal, rng: random.Random) -> Proposal:
    """One LLM step for an "analyze" `action`: a Proposal whose payload is the model's analysis and whose plan
    is its next directions. Raises ReplyParseError / LLMError (with `tokens`) when no usable JSON came back."""
    if action.operator != "analyze":
      raise ValueError(f"analyze answers an 'analyze' action, got {action.operator!r}")
    recorder = UsageRecorder(self.client)
    try:
      (analysis, directions), _ = parse_with_repair(
          recorder, self.build_messages(action, journal), parse_analysis_reply, max_repairs=self.max_repairs,
          schema=ANALYZE_REPLY_SCHEMA, **self._generate_kwargs(rng))
    except (ReplyParseError, LLMError) as error:
      error.tokens = recorder.total_tokens
      raise
    return Proposal(plan=directions, payload=analysis, tokens=recorder.total_tokens)

  def propose(self, action: Action, journal: Journal, rng: random.Random) -> Proposal:
    """One LLM step: a Proposal with the model's one-line plan and the complete new file (for an "analyze"
    action, `analyze`'s Proposal).

    Raises ReplyParseError / LLMError (with `tokens`) when no usable code came back.
    """
    if action.operator == "analyze":
      return self.analyze(action, journal, rng)
    parent = self._parent_source(action, journal)
    recorder = UsageRecorder(self.client)
    kwargs = self._generate_kwargs(rng)

    def parse(completion):
      code = code_from_reply(completion.text, parent, edits=self.edits == "diff")
      if not code.strip():
        raise ReplyParseError("the code block is empty")
      return plan_of(completion.text), code

    try:
      (plan, code), _ = parse_with_repair(recorder, self.build_messages(action, journal), parse,
                                          max_repairs=self.max_repairs, **kwargs)
    except (ReplyParseError, LLMError) as error:
      error.tokens = recorder.total_tokens
      raise
    return Proposal(plan=plan or f"{action.operator} (no plan stated)", payload=code, tokens=recorder.total_tokens)
