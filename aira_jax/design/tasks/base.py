"""`DesignTask`: what an AIRA-Design agent works on, and the contract with the harness that scores it.

A design task is a description for the agent, the file the agent rewrites (`model.py` or `train.py`) with
its starting template, a fixed harness (run inside the sandbox, in the candidate's process), a trusted scorer
(`aira_jax.design.scoring.TrustedScorer`, run in the parent) and a metric. The sandbox writes the candidate's
file and `settings.json` (the scorer's `harness_settings()`) into a fresh working directory and runs
`python -m aira_jax.design.guarded <harness_module> settings.json [phase]` there; the harness runs the stages
of `aira_jax.design.records.STAGES` that apply, writing a start and an end record for each (reports), and
sends its predictions on the results channel; the scorer computes the metrics from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class DesignTask:
  """One design task.

  Attributes:
    name: e.g. "lra-listops", "autoresearch".
    description: Markdown shown to the agent: the goal, the interface the file must implement, the rules
      (what may be changed, the hyper-parameter block in the "configurable" setting), the metric.
    filename: the file the agent writes ("model.py", "train.py").
    template: the starting source of that file (the baseline the agent improves).
    metric: the search metric in the score stage's metrics ("val_accuracy", "val_bpb").
    lower_is_better: the metric's direction.
    harness_module: the module the sandbox runs (`python -m aira_jax.design.guarded <module> settings.json`).
    settings: JSON-serialisable options for the harness (sizes, steps, seeds, data paths, setting).
    final_metric: a metric reported at the end but never used for search (e.g. "test_accuracy"), or None.
    timeout_s: the sandbox's wall-clock limit for one candidate.
    seeds: name -> complete source of each seed file the built-in agent varies (each names itself on a line
      `# seed: <name>` and declares knobs, see aira_jax/design/knobs.py); empty = the template alone.
    scorer: builds the task's `TrustedScorer` from `settings` (`make_scorer`).
  """

  name: str
  description: str
  filename: str
  template: str
  metric: str
  lower_is_better: bool
  harness_module: str
  settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  final_metric: str | None = None
  timeout_s: float = 600.0
  seeds: Mapping[str, str] = dataclasses.field(default_factory=dict)
  scorer: Callable[[Mapping[str, Any]], Any] | None = None

  def make_scorer(self):
    """A fresh `TrustedScorer` for this task (not yet prepared)."""
    if self.scorer is None:
      raise ValueError(f"design task {self.name!r} has no trusted scorer")
    return self.scorer(self.settings)

  def seed_sources(self) -> dict[str, str]:
    """The seeds, or {"template": template} when the task declares none."""
    return dict(self.seeds) or {"template": self.template}
