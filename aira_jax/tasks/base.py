"""The task interface shared by proxy tasks (MAD, MQAR), the text LM and Long Range Arena.

A task builds its data as numpy splits ("train", "validation", "test"), says which model head it needs
("lm": next-token targets per position; "classifier": one label per example, optionally two documents),
the vocabulary and class count the model must be built with, its loss, its metrics, and which metric ranks
candidates (and whether lower is better). Data is generated from a seed or read from user files; nothing is
downloaded.

Conventions: token arrays are int32 (examples, seq_len); LM targets use IGNORE = -100 on positions that do not
count (padding, and for MAD every position that does not test the skill); classifier labels are int32
(examples,).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

IGNORE = -100
Head = Literal["lm", "classifier"]
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: inputs (N, L) int32, targets (N, L) int32 for "lm" or (N,) int32 for "classifier", and for
  two-document tasks the second documents `inputs2` (N, L2)."""

  inputs: np.ndarray
  targets: np.ndarray
  inputs2: np.ndarray | None = None

  def __post_init__(self):
    if self.inputs.ndim != 2:
      raise ValueError(f"inputs must be (examples, seq_len), got shape {self.inputs.shape}")
    if len(self.targets) != len(self.inputs):
      raise ValueError(f"{len(self.targets)} targets for {len(self.inputs)} examples")
    if self.inputs2 is not None and len(self.inputs2) != len(self.inputs):
      raise ValueError(f"{len(self.inputs2)} second documents for {len(self.inputs)} examples")

  def __len__(self) -> int:
    return len(self.inputs)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """What a model needs to know about a task."""

  name: str
  head: Head
  vocab_size: int
  seq_len: int
  num_classes: int | None = None
  dual: bool = False
  metric: str = "accuracy"
  lower_is_better: bool = False


class Task:
  """Base class: subclasses set `spec` and implement `build_splits`; splits are built once and cached."""

  spec: TaskSpec

  def __init__(self):
    self._splits: dict[str, Split] | None = None

  def build_splits(self) -> dict[str, Split]:
    raise NotImplementedError

  def splits(self) -> dict[str, Split]:
    """{"train", "validation", "test"} -> Split (built on first use)."""
    if self._splits is None:
      splits = self.build_splits()
      missing = [s for s in SPLITS if s not in splits]
      if missing:
        raise ValueError(f"task {self.spec.name} built no {missing} split(s)")
      self._splits = splits
    return self._splits

  def loss(self, logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy over counted positions (lm) or examples (classifier); float32 scalar."""
    return cross_entropy(logits, targets)

  def metrics(self, logits: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """{"loss", "accuracy"} over counted positions / examples."""
    return {"loss": cross_entropy(logits, targets), "accuracy": accuracy(logits, targets)}


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean negative log-likelihood of `targets` under `logits` (..., classes), skipping targets == IGNORE."""
  logits = logits.astype(jnp.float32)
  keep = targets != IGNORE
  safe = jnp.where(keep, targets, 0)
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(keep, nll, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def accuracy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Share of counted targets (targets != IGNORE) predicted by argmax."""
  keep = targets != IGNORE
  hits = (jnp.argmax(logits, axis=-1) == targets) & keep
  return jnp.sum(hits) / jnp.maximum(jnp.sum(keep), 1)
