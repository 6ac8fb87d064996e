"""The six MAD proxy tasks (Poli et al. 2024) as registered `Task`s, their settings and the MAD score.

Why: MAD's synthetic token tasks each isolate one skill (recall, fuzzy recall, recall under noise, selective
copying, compression, memorization) and their mean accuracy tracked compute-optimal perplexity across
architectures, so they are a cheap first filter for a layout search.

Settings (`MADSetting`, frozen) follow the MAD paper's task table: base in `BASE_SETTINGS`, difficulty axes in
`HARDER_VALUES` (one axis varied at a time with `.harder(axis, value)`); test set 1,280 examples; the
validation split (not in MAD) has the test set's size. Where the table is silent this module chooses:
12,800 training examples for selective copying and compression (as for recall), and the token layouts
documented in `mad_generators`. Accuracy counts only the positions that test the skill (targets elsewhere
are IGNORE); training is next-token cross-entropy on the same positions.

Registered names: "mad/<task>" for the six tasks, options `seed` and any `MADSetting` field
(`vocab_size`, `seq_len`, `num_train`, `num_test`, `num_validation`, `noise_vocab`, `noise_fraction`,
`num_copy`, `max_motif`), e.g. make_task("mad/in_context_recall", seed=1, vocab_size=32).

MAD-lite (`MAD_LITE`, `mad_lite_tasks(seed)`): the same six tasks at CPU-search size. Relative to the base
settings it drops: sequences longer than 64 (recall 128 -> 64, selective copying 256 -> 64 with 8 copied
tokens instead of 16; compression and memorization keep 32), training sets above 2,048 examples (12,800 ->
2,048; memorization keeps its 256), and test / validation sets above 256 examples (1,280 -> 256). Vocabularies
and noise levels are unchanged, and no harder axis is run.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from aira_jax.tasks import mad_generators as gen
from aira_jax.tasks.base import Split, Task, TaskSpec
from aira_jax.tasks.registry import register_task
from aira_jax.tasks.sequence_data import split_rng

MAD_TASKS = ("in_context_recall", "fuzzy_recall", "noisy_recall", "selective_copying", "compression",
             "memorization")


@dataclasses.dataclass(frozen=True)
class MADSetting:
  """One MAD task's data setting.

  task: one of MAD_TASKS. vocab_size: data tokens (noisy recall adds `noise_vocab` noise tokens on top).
  seq_len: MAD's sequence length (the model sees 2 * seq_len tokens for compression, see `model_seq_len`).
  num_train / num_validation / num_test: examples per split. noise_vocab, noise_fraction: noisy recall.
  num_copy: tokens to copy (selective copying). max_motif: longest key / value motif (fuzzy recall).
  """

  task: str
  vocab_size: int
  seq_len: int
  num_train: int = 12_800
  num_validation: int = 1_280
  num_test: int = 1_280
  noise_vocab: int = 0
  noise_fraction: float = 0.0
  num_copy: int = 0
  max_motif: int = 1

  def __post_init__(self):
    if self.task not in MAD_TASKS:
      raise ValueError(f"unknown MAD task {self.task!r}; choose one of {', '.join(MAD_TASKS)}")
    for name in ("vocab_size", "seq_len", "num_train", "num_validation", "num_test", "max_motif"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"MADSetting.{name} must be a positive integer, got {value!r}")
    if self.vocab_size < 4:
      raise ValueError(f"vocab_size must be at least 4, got {self.vocab_size}")
    if not 0.0 <= self.noise_fraction < 1.0:
      raise ValueError(f"noise_fraction must be in [0, 1), got {self.noise_fraction}")
    if self.task == "selective_copying" and not 1 <= self.num_copy <= self.seq_len // 2:
      raise ValueError(f"num_copy must be in [1, seq_len/2 = {self.seq_len // 2}], got {self.num_copy}")

  @property
  def model_vocab_size(self) -> int:
    """Vocabulary the model must be built with (data tokens + noise tokens)."""
    return self.vocab_size + self.noise_vocab

  @property
  def model_seq_len(self) -> int:
    """Length of the model's input rows: 2 * seq_len for compression (input then reconstruction)."""
    return 2 * self.seq_len if self.task == "compression" else self.seq_len

  def harder(self, axis: str, value) -> MADSetting:
    """This setting with one difficulty axis set to one of MAD's harder values (HARDER_VALUES, from Poli et al. 2024)."""
    allowed = HARDER_VALUES[self.task]
    if axis not in allowed:
      raise ValueError(f"{self.task} has no difficulty axis {axis!r}; axes: {', '.join(allowed)}")
    if value not in allowed[axis]:
      raise ValueError(f"{self.task}.{axis}: {value!r} is not a MAD setting; choose among {allowed[axis]}")
    return dataclasses.replace(self, **{axis: value})

  def replace(self, **changes) -> MADSetting:
    """A copy with any fields changed (validated); ValueError naming unknown fields."""
    fields = {f.name for f in dataclasses.fields(self)} - {"task"}
    unknown = set(changes) - fields
    if unknown:
      raise ValueError(f"unknown MAD option(s) {sorted(unknown)}; known: seed, {', '.join(sorted(fields))}")
    return dataclasses.replace(self, **changes)


_RECALL_AXES = {"vocab_size": (32, 64, 128), "seq_len": (256, 512, 1024), "num_train": (6400, 3200, 1600, 800)}

BASE_SETTINGS: dict[str, MADSetting] = {
    "in_context_recall": MADSetting("in_context_recall", vocab_size=16, seq_len=128),
    "fuzzy_recall": MADSetting("fuzzy_recall", vocab_size=16, seq_len=128, max_motif=3),
    "noisy_recall": MADSetting("noisy_recall", vocab_size=32, seq_len=128, noise_vocab=16, noise_fraction=0.2),
    "selective_copying": MADSetting("selective_copying", vocab_size=16, seq_len=256, num_copy=16),
    "compression": MADSetting("compression", vocab_size=16, seq_len=32),
    "memorization": MADSetting("memorization", vocab_size=256, seq_len=32, num_train=256),
}

HARDER_VALUES: dict[str, dict[str, tuple]] = {
    "in_context_recall": _RECALL_AXES,
    "fuzzy_recall": _RECALL_AXES,
    "noisy_recall": {"noise_fraction": (0.4, 0.6, 0.8), "vocab_size": (64, 128), "seq_len": (256, 512, 1024),
                     "num_train": (6400, 3200, 1600, 800)},
    "selective_copying": {"num_copy": (32, 64, 96), "seq_len": (512, 1024)},
    "compression": {"vocab_size": (32, 64, 128), "seq_len": (64, 128, 256)},
    "memorization": {"vocab_size": (512, 1024, 2048, 4096, 8192)},
}

_LITE_SIZES = dict(num_train=2048, num_validation=256, num_test=256)
MAD_LITE: dict[str, MADSetting] = {
    "in_context_recall": BASE_SETTINGS["in_context_recall"].replace(seq_len=64, **_LITE_SIZES),
    "fuzzy_recall": BASE_SETTINGS["fuzzy_recall"].replace(seq_len=64, **_LITE_SIZES),
    "noisy_recall": BASE_SETTINGS["noisy_recall"].replace(seq_len=64, **_LITE_SIZES),
    "selective_copying": BASE_SETTINGS["selective_copying"].replace(seq_len=64, num_copy=8, **_LITE_SIZES),
    "compression": BASE_SETTINGS["compression"].replace(**_LITE_SIZES),
    "memorization": BASE_SETTINGS["memorization"].replace(num_validation=256, num_test=256),
}


class MADTask(Task):
  """One MAD task at one setting and seed; "lm" head, vocab `setting.model_vocab_size`,
  rows of `setting.model_seq_len` tokens.

  Splits draw from independent generators per (seed, split); memorization's key -> value map
  (`value_map`, (vocab_size/2,) int64, values in [V/2, V)) comes from its own generator and is shared by
  every split.
  """

  def __init__(self, setting: MADSetting, seed: int = 0):
    super().__init__()
    self.setting = setting
    self.seed = int(seed)
    self.spec = TaskSpec(name=f"mad/{setting.task}", head="lm", vocab_size=setting.model_vocab_size,
                         seq_len=setting.model_seq_len)
    half = setting.vocab_size // 2
    self.value_map = split_rng(self.seed, "memorization_map").integers(half, setting.vocab_size, half) \
        if setting.task == "memorization" else None

  def generate(self, rng: np.random.Generator, num: int) -> Split:
    """`num` fresh examples of this task from `rng`."""
    s = self.setting
    if s.task in ("in_context_recall", "noisy_recall", "memorization"):
      inputs, targets = gen.key_value_stream(
          rng, num, s.seq_len, vocab_size=s.vocab_size, value_table=self.value_map, noise_vocab=s.noise_vocab,
          noise_fraction=s.noise_fraction, score_first_occurrence=s.task == "memorization")
    elif s.task == "fuzzy_recall":
      inputs, targets = gen.fuzzy_recall(rng, num, s.seq_len, vocab_size=s.vocab_size, max_motif=s.max_motif)
    elif s.task == "selective_copying":
      inputs, targets = gen.selective_copying(rng, num, s.seq_len, vocab_size=s.vocab_size, num_copy=s.num_copy)
    else:
      inputs, targets = gen.compression(rng, num, s.seq_len, vocab_size=s.vocab_size)
    return Split(inputs=inputs, targets=targets)

  def build_splits(self) -> dict[str, Split]:
    sizes = {"train": self.setting.num_train, "validation": self.setting.num_validation,
             "test": self.setting.num_test}
    return {split: self.generate(split_rng(self.seed, split), num) for split, num in sizes.items()}


def make_mad_task(task: str, *, seed: int = 0, **overrides) -> MADTask:
  """The MAD task `task` at its base setting with `overrides` (MADSetting fields) applied."""
  if task not in BASE_SETTINGS:
    raise ValueError(f"unknown MAD task {task!r}; choose one of {', '.join(MAD_TASKS)}")
  return MADTask(BASE_SETTINGS[task].replace(**overrides), seed=seed)


def mad_lite_tasks(seed: int = 0) -> dict[str, MADTask]:
  """The six MAD-lite tasks, keyed by task name ("in_context_recall", ...)."""
  return {task: MADTask(setting, seed=seed) for task, setting in MAD_LITE.items()}


def mad_score(accuracies: dict[str, float]) -> float:
  """MAD score: the mean of the per-task (best) test accuracies."""
  if not accuracies:
    raise ValueError("mad_score needs at least one task accuracy")
  return float(np.mean([float(a) for a in accuracies.values()]))


for _task in MAD_TASKS:
  register_task(f"mad/{_task}", functools.partial(make_mad_task, _task))
