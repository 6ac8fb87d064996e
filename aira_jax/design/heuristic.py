"""The built-in design agent: combines and varies the task's seed files at the level of their knobs, no LLM.

Seeds are complete, valid files (the LRA seed mechanisms: softmax, linear, sliding-window, state-space ...;
the autoresearch baseline), each naming itself on a first line `# seed: <name>` and declaring knobs
(knobs.py). Operators, all driven by the policy's seeded `random.Random`:
- draft: a seed chosen at random, each knob set to a random allowed value;
- improve: one knob of the parent changed to another allowed value (a parent without knobs, e.g. code an LLM
  agent wrote in a shared tree, gets a fresh draft instead);
- crossover: parents from the same seed take each knob from either parent; otherwise an improve of the first;
- debug: an improve of the nearest ancestor that scored, or a fresh draft;
- analyze: the journal's statistics (design/analysis.py: scores by seed and by knob value, failures by stage)
  as text and the directions they suggest; it draws nothing from the rng, and the proposals above do not read
  it, so the agent's search does not depend on the analysis schedule.
So `python -m aira_jax.design` runs offline and gives the LLM agents a baseline to beat.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from aira_jax.agents.ensemble import Proposal
from aira_jax.design.analysis import analyze_candidates
from aira_jax.design.knobs import describe, parse_knobs, seed_name, set_knobs

NEW_TRIES = 10


class SeedVariationOperator:
  """Proposes files by varying the knobs of `seeds` (name -> source); see the module docstring.
  `lower_is_better`: the task metric's direction, for `analyze` (None: the journal's)."""

  def __init__(self, seeds: Mapping[str, str], *, lower_is_better: bool | None = None):
    if not seeds:
      raise ValueError("the built-in design agent needs at least one seed file")
    self.seeds = dict(seeds)
    self.lower_is_better = lower_is_better

  def analyze(self, action, journal, rng: random.Random) -> Proposal:
    """The analysis of `journal` (the agent's view) for an "analyze" `action`: payload = the statistics of
    `analyze_candidates`, plan = its directions. Deterministic; `rng` is not drawn from."""
    del action, rng
    names = [n for n in (seed_name(source) for source in self.seeds.values()) if n is not None]
    analysis = analyze_candidates(journal, seeds=names, lower_is_better=self.lower_is_better)
    return Proposal(plan=analysis.directions, payload=analysis.text)

  def draft(self, rng: random.Random) -> Proposal:
    name = rng.choice(sorted(self.seeds))
    source = self.seeds[name]
    values = {k.name: rng.choice(k.options) for k in parse_knobs(source).values()}
    return Proposal(plan=f"draft {name}: {describe(values) or 'as is'}", payload=set_knobs(source, values))

  def improve(self, source: str, rng: random.Random, what: str) -> Proposal:
    knobs = [k for k in parse_knobs(source).values() if len(k.options) > 1]
    if not knobs:
      proposal = self.draft(rng)
      return Proposal(plan=f"{what}: no knobs to vary, fresh {proposal.plan}", payload=proposal.payload)
    knob = rng.choice(knobs)
    value = rng.choice([o for o in knob.options if o != knob.value])
    return Proposal(plan=f"{what}: {seed_name(source) or 'file'} {knob.name} {knob.value} -> {value}",
                    payload=set_knobs(source, {knob.name: value}))

  def crossover(self, first: str, second: str, rng: random.Random, what: str) -> Proposal:
    if seed_name(first) is None or seed_name(first) != seed_name(second):
      return self.improve(first, rng, f"{what} (different seeds: improve the first)")
    a, b = parse_knobs(first), parse_knobs(second)
    values = {name: (a[name].value if rng.random() < 0.5 else b[name].value) for name in a if name in b}
    return Proposal(plan=f"{what}: {seed_name(first)} {describe(values)}", payload=set_knobs(first, values))

  def propose(self, action, journal, rng: random.Random) -> Proposal:
    """A Proposal for the policy's `action`; up to `NEW_TRIES` draws avoid files the journal already holds
    (a small knob space makes repeats likely, and a repeat only re-reads a known score); for an "analyze"
    action, `analyze`'s Proposal."""
    if action.operator == "analyze":
      return self.analyze(action, journal, rng)
    known = {node.payload for node in journal.nodes}
    for _ in range(NEW_TRIES):
      proposal = self._propose_once(action, journal, rng)
      if proposal.payload not in known:
        return proposal
    for _ in range(NEW_TRIES):  # every variation tried was known (e.g. a seed with one knob): a new draft
      fresh = self.draft(rng)
      if fresh.payload not in known:
        return Proposal(plan=f"{action.operator}: every variation drawn was already evaluated; fresh {fresh.plan}",
                        payload=fresh.payload)
    return proposal

  def _propose_once(self, action, journal, rng: random.Random) -> Proposal:
    operator, parents = action.operator, action.parent_ids
    if operator == "draft":
      return self.draft(rng)
    if operator == "improve":
      return self.improve(journal.get(parents[0]).payload, rng, f"improve {parents[0]}")
    if operator == "crossover":
      first, second = (journal.get(p).payload for p in parents)
      return self.crossover(first, second, rng, f"crossover {parents[0]} x {parents[1]}")
    if operator == "debug":
      node = journal.get(parents[0])
      while node.parent_ids:
        node = journal.get(node.parent_ids[0])
        if node.is_good:
          return self.improve(node.payload, rng, f"debug {parents[0]}: vary the scored ancestor {node.id}")
      proposal = self.draft(rng)
      return Proposal(plan=f"debug {parents[0]}: no scored ancestor, fresh {proposal.plan}", payload=proposal.payload)
    raise ValueError(f"the built-in design agent cannot perform {operator!r}")
