"""The LLM operator of AIRA-Compose: asks a model for a layout, checks it, and hands the ensemble a proposal.

`LayoutLLMOperator.propose(action, journal, rng)` follows the contract of `HeuristicOperator`: it turns a
policy's `Action` (draft / improve / debug / crossover) into a prompt from `aira_jax/compose/prompts/*.md`,
with memory from the journal (the best good nodes; the agent's latest analysis; for debug also the chain of
failed fixes), and asks the client for JSON matching `LAYOUT_REPLY_SCHEMA` ({"plan", "layout"}).
`LayoutLLMOperator.analyze` answers the ensemble's scheduled "analyze" action: the analyze prompt shows the
journal's statistics (compose/analysis.py, the numbers the built-in agent writes), the steps since the previous
analysis and the memory, and asks for JSON matching `ANALYZE_REPLY_SCHEMA` ({"analysis", "next_directions"}),
which becomes the analysis node's text and directions. Two kinds of bad reply are told apart:

- the reply is not usable JSON (not JSON, wrong fields): the model gets the error quoted back and answers
  again, at most `max_repairs` times (`parse_with_repair`); past that the last `LLMResponseError` /
  `ReplyParseError` propagates and the ensemble records a buggy node.
- the JSON is fine but the layout is not (wrong number of layers, unknown primitive, a primitive outside
  the space): no repair round-trip; `InvalidLayoutProposal` (a ValueError) is raised at once, naming what
  is wrong and carrying the plan and the rejected layout text, so the node records them and the next debug
  step shows the model its own mistake. This is how aira-dojo treats a submission that fails to run, and
  it keeps one bad idea from costing several calls.

An analyze reply that is not usable JSON (or whose analysis is empty) is repaired and fails the same way; it
has no second kind. Every error raised by `propose` and `analyze` carries `tokens`, the tokens spent on all
attempts of this step, so budgets count failed steps too. `LLMBudgetExceeded` propagates unchanged (the
ensemble stops the agent).
"""

from __future__ import annotations

import random
from typing import Any

from aira_jax import primitives
from aira_jax.agents.action import Action
from aira_jax.agents.analysis_text import recent_steps
from aira_jax.agents.ensemble import Proposal
from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.memory import DEFAULT_MAX_CHARS, analysis_memory, debug_chain, summarize_good_nodes
from aira_jax.agents.replies import (ReplyParseError, UsageRecorder, extract_json, parse_analysis_reply,
                                    parse_with_repair)
from aira_jax.compose.analysis import analyze_layouts
from aira_jax.compose.prompts import ANALYZE_REPLY_SCHEMA, LAYOUT_REPLY_SCHEMA, describe_space, render, space_text
from aira_jax.layout import Layout
from aira_jax.llm.base import Completion, LLMError, Message
from aira_jax.llm.schema import schema_errors

NO_MEMORY = "Nothing yet: no layout has been scored so far."
NO_ANALYSIS = "None yet."
FIRST_FIX = "None: this is the first attempt to fix it."
MAX_OUTPUT_CHARS = 1500
"""How much of a failed evaluation's output (its tail) the debug prompt quotes next to the error."""


class InvalidLayoutProposal(ValueError):
  """The model's JSON was well formed but its layout is not valid here.

  Attributes:
    plan: the model's plan.
    payload: the layout text as the model wrote it.
    tokens: tokens spent on every attempt of the step.
  """

  def __init__(self, message: str, *, plan: str, payload: str, tokens: int):
    super().__init__(message)
    self.plan = plan
    self.payload = payload
    self.tokens = tokens


def parse_layout_reply(completion: Completion) -> tuple[str, str]:
  """(plan, layout text) of a reply; ReplyParseError when it is not a JSON object with both as strings.

  Uses the client's validated `parsed` value when there is one, else finds the JSON in the text.
  """
  value = completion.parsed if completion.parsed is not None else extract_json(completion.text)
  errors = schema_errors(value, LAYOUT_REPLY_SCHEMA)
  if errors:
    raise ReplyParseError(f"the JSON does not match the requested format: {'; '.join(errors)}")
  return value["plan"].strip(), value["layout"].strip()


class LayoutLLMOperator:
  """Proposes layouts with an LLM; see the module docstring for how bad replies are handled.

  Args:
    client: an `LLMClient` (wrap it in `AccountedClient` for a token budget).
    space: allowed primitives ("AM", "AMS", ...).
    depth: the exact number of layers of every layout.
    task_description: the proxy task, as the prompts show it.
    metric_name: what the evaluator reports (e.g. "mean MAD accuracy").
    lower_is_better: the metric's direction.
    max_repairs: repair round-trips after a reply that is not usable JSON (0 = none).
    temperature: sampling temperature; None keeps the client's default.
    memory_k: how many of the best good nodes the memory shows.
    max_memory_chars: character budget of the memory text, of the debug history and of the latest analysis.
  """

  def __init__(self, client, *, space: str, depth: int, task_description: str, metric_name: str,
               lower_is_better: bool, max_repairs: int = 1, temperature: float | None = None, memory_k: int = 5,
               max_memory_chars: int = DEFAULT_MAX_CHARS):
    primitives.normalize_space(space)  # validates
    if depth < 1:
      raise ValueError(f"depth must be at least 1, got {depth}")
    if max_repairs < 0:
      raise ValueError(f"max_repairs must be >= 0, got {max_repairs}")
    if memory_k < 1:
      raise ValueError(f"memory_k must be at least 1, got {memory_k}")
    self.client = client
    self.space = space
    self.depth = depth
    self.task_description = task_description
    self.metric_name = metric_name
    self.lower_is_better = lower_is_better
    self.max_repairs = max_repairs
    self.temperature = temperature
    self.memory_k = memory_k
    self.max_memory_chars = max_memory_chars

  # Prompts.

  def _score(self, node: Node) -> str:
    if node.metric is None:
      return f"not scored (failed: {node.error or 'no error recorded'})"
    direction = "lower is better" if self.lower_is_better else "higher is better"
    return f"{node.metric:.6g} ({self.metric_name}, {direction})"

  @staticmethod
  def _layout_view(payload: str) -> str:
    """The layout text, with its run-length form and ratio when it parses."""
    if not payload:
      return "(no layout was recorded)"
    try:
      layout = Layout.parse(payload)
    except ValueError:
      return repr(payload)
    return f"{layout.text} (runs {layout.run_length()}, ratio {layout.ratio_text()})"

  def _error_view(self, node: Node) -> str:
    error = node.error or "(no error recorded)"
    if node.output_excerpt:
      error += f"\n  output (last {MAX_OUTPUT_CHARS} chars):\n{node.output_excerpt[-MAX_OUTPUT_CHARS:]}"
    return error

  def _recent_steps(self, journal: Journal) -> str:
    """The steps since the previous analysis, one line each (`agents.analysis_text.recent_steps`)."""
    return recent_steps(journal, self._layout_view, self._score)

  def prompt_values(self, action: Action, journal: Journal) -> dict[str, Any]:
    """Every field the system prompt and `action.operator`'s template use."""
    memory = summarize_good_nodes(journal, k=self.memory_k, max_chars=self.max_memory_chars)
    values: dict[str, Any] = {
        "task": self.task_description, "space": space_text(self.space), "depth": self.depth,
        "primitives": describe_space(self.space), "memory": memory or NO_MEMORY,
        "analysis": analysis_memory(journal, max_chars=self.max_memory_chars) or NO_ANALYSIS,
    }
    parents = [journal.get(p) for p in action.parent_ids]
    if action.operator == "improve":
      values.update(parent_layout=self._layout_view(parents[0].payload), parent_metric=self._score(parents[0]),
                    parent_plan=parents[0].plan or "(none recorded)")
    elif action.operator == "crossover":
      values.update(layout_a=self._layout_view(parents[0].payload), metric_a=self._score(parents[0]),
                    layout_b=self._layout_view(parents[1].payload), metric_b=self._score(parents[1]))
    elif action.operator == "debug":
      buggy = parents[0]
      history = (FIRST_FIX if journal.debug_depth(buggy.id) == 0
                 else debug_chain(journal, buggy.id, max_chars=self.max_memory_chars))
      values.update(buggy_layout=self._layout_view(buggy.payload), error=self._error_view(buggy),
                    debug_history=history)
    elif action.operator == "analyze":
      values.update(statistics=analyze_layouts(journal, self.space).text, recent=self._recent_steps(journal),
                    metric_name=self.metric_name,
                    direction="lower is better" if self.lower_is_better else "higher is better")
    return values

  def build_messages(self, action: Action, journal: Journal) -> list[Message]:
    """The system prompt and the operator's user prompt for `action`."""
    values = self.prompt_values(action, journal)
    return [Message("system", render("system", values)), Message("user", render(action.operator, values))]

  # Checking a reply.

  def check_layout(self, layout_text: str) -> Layout:
    """The layout, or ValueError saying exactly what is wrong (parse position, space, depth)."""
    try:
      layout = Layout.parse(layout_text, space=self.space)
    except ValueError as error:
      raise ValueError(f"layout {layout_text!r} is not valid: {error}") from None
    if layout.depth != self.depth:
      raise ValueError(f"layout {layout_text!r} has {layout.depth} layers; exactly {self.depth} are required")
    return layout

  def _ask(self, action: Action, journal: Journal, rng: random.Random, schema: dict[str, Any], parse):
    """(parse's value, tokens spent) of one LLM step with repair; errors get `tokens` and propagate."""
    messages = self.build_messages(action, journal)
    recorder = UsageRecorder(self.client)
    kwargs: dict[str, Any] = {"schema": schema, "seed": rng.randrange(2**31)}
    if self.temperature is not None:
      kwargs["temperature"] = self.temperature
    try:
      value, _ = parse_with_repair(recorder, messages, parse, max_repairs=self.max_repairs, **kwargs)
    except (ReplyParseError, LLMError) as error:
      error.tokens = recorder.total_tokens
      raise
    return value, recorder.total_tokens

  def analyze(self, action: Action, journal: Journal, rng: random.Random) -> Proposal:
    """One LLM step for an "analyze" `action`: a `Proposal` whose payload is the model's analysis and whose plan
    is its next directions. Raises ReplyParseError / LLMResponseError / LLMError (with `tokens`) like `propose`."""
    if action.operator != "analyze":
      raise ValueError(f"analyze answers an 'analyze' action, got {action.operator!r}")
    (analysis, directions), tokens = self._ask(action, journal, rng, ANALYZE_REPLY_SCHEMA, parse_analysis_reply)
    return Proposal(plan=directions, payload=analysis, tokens=tokens)

  def propose(self, action: Action, journal: Journal, rng: random.Random) -> Proposal:
    """One LLM step for `action`: a `Proposal` with the model's plan and the canonical layout text (for an
    "analyze" action, `analyze`'s Proposal).

    Raises:
      InvalidLayoutProposal: the reply's layout is invalid (carries plan, payload and tokens).
      ReplyParseError / LLMResponseError: no usable JSON after `max_repairs` repairs.
      LLMError (LLMBudgetExceeded included): from the client, unchanged.
    Each carries `tokens`, the tokens spent on this step.
    """
    if action.operator == "analyze":
      return self.analyze(action, journal, rng)
    (plan, layout_text), tokens = self._ask(action, journal, rng, LAYOUT_REPLY_SCHEMA, parse_layout_reply)
    try:
      layout = self.check_layout(layout_text)
    except ValueError as error:
      raise InvalidLayoutProposal(str(error), plan=plan, payload=layout_text, tokens=tokens) from None
    return Proposal(plan=plan, payload=layout.text, tokens=tokens)
