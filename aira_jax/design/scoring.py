"""Trusted scoring: the parent computes every metric; the candidate's process only ever sends predictions.

A design task's `TrustedScorer` runs in the parent (it runs no candidate code):
- `prepare(root)` builds the task's data once: what a candidate may see (training inputs and labels,
  evaluation inputs) goes to files under `root`, bound read-only into each sandbox; held-out labels and targets
  stay in this object's memory and never reach a sandbox;
- `score(run_phase)` runs one candidate: it asks the evaluator to run sandboxed phases (`Phase`: arguments for
  the task's harness, a reader of the results channel, extra read-only data), reads the stage records the
  harness wrote (reports: they say where a candidate failed, never what it scored), and computes the metrics
  from the arrays the candidate sent and the labels it holds. Its stages ("score", and for autoresearch
  "causality") are recorded as `trusted`.
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from aira_jax.design.channel import ArrayReader
from aira_jax.design.records import STAGES
from aira_jax.design.sandbox import SandboxOutcome


TRUSTED_STAGES = ("causality", "score")
"""Stages only the parent runs: records a candidate writes under these names are dropped."""


@dataclasses.dataclass(frozen=True)
class Phase:
  """One sandboxed run of the task's harness for a candidate.

  Attributes:
    args: the harness's command-line arguments (after the module name).
    consume: reads the results channel in the parent (`ArrayReader`), or None.
    data_dirs: more directories the harness may read (read-only), besides the scorer's data.
    timeout_s: the wall-clock limit of this phase (None: the evaluator's).
  """
  args: tuple[str, ...]
  consume: Callable[[ArrayReader], Any] | None = None
  data_dirs: tuple[str, ...] = ()
  timeout_s: float | None = None


@dataclasses.dataclass
class Verdict:
  """The outcome of one candidate: every stage (the harness's reports and the trusted ones), the trusted
  metrics, what the candidate's process reported about itself, and the first failure."""
  stages: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
  reported: dict[str, Any] = dataclasses.field(default_factory=dict)
  failed_stage: str | None = None
  error: str | None = None

  @property
  def failed(self) -> bool:
    return self.failed_stage is not None

  def fail(self, stage: str, error: str) -> Verdict:
    """Marks the first failure (later ones are ignored); returns self."""
    if self.failed_stage is None:
      self.failed_stage, self.error = stage, error
    return self

  def add_phase(self, outcome: SandboxOutcome) -> bool:
    """Merges a phase's stage records; records its failure (a failed stage, a kill, an exit, a bad channel).
    True when the phase ran to its end with every stage ok."""
    stages, running = {}, None
    for record in outcome.records:
      stage = record["stage"]
      if stage in TRUSTED_STAGES or stage not in STAGES:  # only the parent runs those: a forged record
        continue
      if record.get("event") == "start":
        stages[stage] = {"ok": None}
        running = stage
      elif record.get("event") == "end":
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        stages[stage] = {"ok": bool(record.get("ok")), "seconds": record.get("seconds"),
                         "error": record.get("error"), "metrics": metrics}
        running = None if running == stage else running
    self.stages.update(stages)
    for stage in stages.values():
      self.reported.update(stage.get("metrics") or {})
    failed = next((name for name, s in stages.items() if s["ok"] is False), None)
    if failed is not None:
      self.fail(failed, f"stage {failed} failed: {stages[failed]['error'] or 'no error recorded'}")
    elif running is not None or outcome.killed or outcome.returncode != 0:
      why = f"killed ({outcome.killed})" if outcome.killed else f"exited with code {outcome.returncode}"
      self.fail(running or "startup", f"{why} during stage {running or 'startup'}")
    elif outcome.consume_error is not None:
      self.stages["predict"] = {**self.stages.get("predict", {}), "ok": False, "error": outcome.consume_error}
      self.fail("predict", f"stage predict failed: {outcome.consume_error}")
    return not self.failed

  def trusted_stage(self, name: str, fn: Callable[[], dict[str, Any]]) -> bool:
    """Runs a trusted stage in the parent: `fn` returns its metrics or raises CandidateFault (the candidate's
    predictions are wrong: a failed node with that message). True when it passed."""
    started = time.perf_counter()
    try:
      metrics = fn()
    except CandidateFault as e:
      self.stages[name] = {"ok": False, "seconds": time.perf_counter() - started, "error": str(e), "metrics": {},
                           "trusted": True}
      self.fail(name, f"stage {name} failed: {e}")
      return False
    self.stages[name] = {"ok": True, "seconds": time.perf_counter() - started, "error": None, "metrics": metrics,
                         "trusted": True}
    self.metrics.update(metrics)
    return True


class CandidateFault(Exception):
  """What the candidate sent fails a trusted check (shape, finiteness, causality): its node fails."""


class TrustedScorer(abc.ABC):
  """The trusted side of a design task (module docstring)."""

  data_dir: pathlib.Path | None = None

  @abc.abstractmethod
  def prepare(self, root: pathlib.Path) -> None:
    """Builds the data once: files a candidate may read under `root` (sets `data_dir`), held-out labels in
    memory."""

  @abc.abstractmethod
  def harness_settings(self) -> Mapping[str, Any]:
    """The settings.json the harness gets (no data paths, no held-out anything)."""

  def hidden_paths(self) -> tuple[str, ...]:
    """Installed paths a candidate must not see under bwrap (e.g. a corpus package holding validation text)."""
    return ()

  @abc.abstractmethod
  def score(self, run_phase: Callable[[Phase], SandboxOutcome]) -> Verdict:
    """Runs the candidate's phases through `run_phase` and scores what they sent."""
