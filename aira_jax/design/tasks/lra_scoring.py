"""The trusted side of the LRA design tasks: builds the data, keeps the held-out labels, scores the logits.

`LraScorer(settings).prepare(root)` builds the splits in the parent (`lra_training.load_splits`: generated or
read from the user's files) and writes only training inputs and labels and validation / test inputs; the
labels of validation and test stay in this object. `score(run_phase)` runs the harness once in the sandbox
(it trains and sends validation then test logits on the results channel) and computes, here: val_accuracy
(the search metric), val_accuracy_se (its binomial standard error, sqrt(p (1 - p) / n)), test_accuracy,
chance and test_chance (the majority class of the training labels). The harness's own numbers (train loss,
steps, timings) are kept as reports.

Not protected: the generated tasks' labels follow from their inputs (a ListOps expression can be evaluated,
a Pathfinder image traced) and from the public generator and seed, so a candidate that replaces its learned
predictions with hand-written code can score near 100% on them. Such code is visible in the candidate's file;
a score far above what the task's models reach deserves reading it.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from aira_jax.design.sandbox import SandboxOutcome
from aira_jax.design.scoring import Phase, TrustedScorer, Verdict
from aira_jax.design.tasks import lra_training as training

DATA_ONLY_KEYS = ("path", "min_length", "max_depth", *training.PATHFINDER_KEYS[1:])
"""Settings that only describe how the data is made: the harness does not get them."""


class LraScorer(TrustedScorer):
  """The trusted scorer of one LRA task's settings (module docstring)."""

  def __init__(self, settings: Mapping[str, Any]):
    self.settings = dict(settings)
    self.num_classes = training.TASKS[self.settings["task"]][1]
    self.labels: dict[str, np.ndarray] = {}

  def prepare(self, root: pathlib.Path) -> None:
    splits = training.load_splits(self.settings)
    training.write_public_splits(splits, root)
    self.labels = {name: np.asarray(splits[name].targets) for name in ("validation", "test")}
    self.majority = int(np.bincount(splits["train"].targets, minlength=self.num_classes).argmax())
    self.data_dir = root

  def harness_settings(self) -> dict[str, Any]:
    if self.data_dir is None:
      raise RuntimeError("LraScorer.prepare(root) must run before harness_settings()")
    settings = {k: v for k, v in self.settings.items() if k not in DATA_ONLY_KEYS}
    return {**settings, "data_dir": str(self.data_dir)}

  def read_logits(self, reader) -> dict[str, np.ndarray]:
    """The validation and test logits from the results channel, shapes checked."""
    return {name: reader.read(f"{name} logits", (len(self.labels[name]), self.num_classes))
            for name in ("validation", "test")}

  def metrics(self, logits: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Accuracies of the logits against the kept labels, with the majority-class rates."""
    out = {}
    for name, prefix in (("validation", "val_"), ("test", "test_")):
      labels = self.labels[name]
      out[f"{prefix}accuracy"] = float(np.mean(np.argmax(logits[name], axis=-1) == labels))
    n = len(self.labels["validation"])
    accuracy = out["val_accuracy"]
    out["val_accuracy_se"] = math.sqrt(accuracy * (1 - accuracy) / n)
    out["chance"] = float(np.mean(self.labels["validation"] == self.majority))
    out["test_chance"] = float(np.mean(self.labels["test"] == self.majority))
    return out

  def score(self, run_phase: Callable[[Phase], SandboxOutcome]) -> Verdict:
    verdict = Verdict()
    outcome = run_phase(Phase(("settings.json",), consume=self.read_logits))
    if verdict.add_phase(outcome):
      verdict.trusted_stage("score", lambda: self.metrics(outcome.consumed))
    return verdict
