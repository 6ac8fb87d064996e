"""The six Long Range Arena tasks, registered by name: "lra/listops", "lra/text", "lra/retrieval", "lra/image",
"lra/pathfinder", "lra/pathx".

ListOps, Pathfinder and Path-X are generated from a seed unless `path=` points at released files; Text,
Retrieval and Image need `path=` (a ValueError says where to get the files and which layout to point at).
Splits where the release has no validation set (IMDb, CIFAR-10) hold out `validation_fraction` of the
training set after a seeded shuffle; loaded Pathfinder data (one pool) is shuffled and split 80/10/10.
Every task is a classifier; Retrieval is two-document (`dual=True`, `Split.inputs2`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aira_jax.tasks.base import Split, Task, TaskSpec
from aira_jax.tasks.lra import listops, loaders, pathfinder
from aira_jax.tasks.lra.tokenize import BYTE_VOCAB_SIZE, LISTOPS_VOCAB_SIZE, pad_or_truncate
from aira_jax.tasks.registry import register_task

WHERE = {
    "text": "the IMDb reviews (aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/); pass "
            "path= the extracted aclImdb directory holding train/{pos,neg} and test/{pos,neg}",
    "retrieval": "the AAN pairs from the LRA release (lra_release.gz, folder tsv_data); pass path= the directory "
                 "holding new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv, new_aan_pairs.test.tsv",
    "image": "CIFAR-10, python version (cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html); "
             "pass path= the cifar-10-batches-py directory holding data_batch_1..5 and test_batch",
}


class LRATask(Task):
  """A classifier task whose splits come from `builder()`."""

  def __init__(self, spec: TaskSpec, builder: Callable[[], dict[str, Split]]):
    super().__init__()
    self.spec = spec
    self._builder = builder

  def build_splits(self) -> dict[str, Split]:
    return self._builder()


def _need_path(task: str, path) -> None:
  if path is None:
    raise ValueError(f"lra/{task} reads user files and downloads nothing: get {WHERE[task]}")


def _holdout(inputs, targets, fraction: float, seed: int, inputs2=None):
  """(train, validation) Splits: a seeded shuffle, the last `fraction` held out."""
  order = np.random.default_rng(seed).permutation(len(inputs))
  cut = len(order) - max(1, int(round(fraction * len(order))))
  pick = lambda idx: Split(inputs[idx], targets[idx], None if inputs2 is None else inputs2[idx])
  return pick(order[:cut]), pick(order[cut:])


def make_listops(path=None, num_train: int = 96_000, num_validation: int = 2_000, num_test: int = 2_000,
                 seed: int = 0, min_len: int = 500, max_len: int = 2000, seq_len: int | None = None) -> Task:
  """ListOps generated (LRA spec) or read from `path` (basic_{train,val,test}.tsv); inputs padded to seq_len."""
  seq_len = seq_len or max_len

  def build():
    if path is not None:
      parts = loaders.load_listops(path)
    else:
      counts = {"train": num_train, "validation": num_validation, "test": num_test}
      tokens, labels = listops.generate(sum(counts.values()), seed, listops.ListOpsConfig(min_len, max_len))
      parts, start = {}, 0
      for split, n in counts.items():
        parts[split] = (tokens[start:start + n], labels[start:start + n])
        start += n
    return {s: Split(pad_or_truncate(t, seq_len), y) for s, (t, y) in parts.items()}

  return LRATask(TaskSpec("lra/listops", "classifier", LISTOPS_VOCAB_SIZE, seq_len, num_classes=10), build)


def make_text(path=None, seq_len: int = 4096, validation_fraction: float = 0.1, seed: int = 0) -> Task:
  """IMDb sentiment at byte level from `path` (aclImdb); seq_len 4096 (LRA's code used 1000)."""
  _need_path("text", path)

  def build():
    parts = loaders.load_imdb(path)
    train_x, train_y = pad_or_truncate(parts["train"][0], seq_len), parts["train"][1]
    train, validation = _holdout(train_x, train_y, validation_fraction, seed)
    return {"train": train, "validation": validation,
            "test": Split(pad_or_truncate(parts["test"][0], seq_len), parts["test"][1])}

  return LRATask(TaskSpec("lra/text", "classifier", BYTE_VOCAB_SIZE, seq_len, num_classes=2), build)


def make_retrieval(path=None, seq_len: int = 4000) -> Task:
  """AAN citation matching from `path`: two byte-level documents of seq_len each, dual encoder."""
  _need_path("retrieval", path)

  def build():
    return {s: Split(pad_or_truncate(a, seq_len), y, pad_or_truncate(b, seq_len))
            for s, (a, b, y) in loaders.load_aan(path).items()}

  return LRATask(TaskSpec("lra/retrieval", "classifier", BYTE_VOCAB_SIZE, seq_len, num_classes=2, dual=True),
                 build)


def make_image(path=None, validation_fraction: float = 0.1, seed: int = 0) -> Task:
  """Grayscale CIFAR-10 from `path` as 1024 pixel tokens 0..255."""
  _need_path("image", path)

  def build():
    parts = loaders.load_cifar10(path)
    train, validation = _holdout(parts["train"][0].astype(np.int32), parts["train"][1], validation_fraction, seed)
    return {"train": train, "validation": validation,
            "test": Split(parts["test"][0].astype(np.int32), parts["test"][1])}

  return LRATask(TaskSpec("lra/image", "classifier", 256, 1024, num_classes=10), build)


def _make_pathfinder(name: str, default: pathfinder.PathfinderConfig):
  def make(path=None, num_train: int = 160_000, num_validation: int = 20_000, num_test: int = 20_000,
           seed: int = 0, config: pathfinder.PathfinderConfig | None = None) -> Task:
    """Pathfinder generated (see pathfinder.py) or loaded from `path` (PNG + metadata, split 80/10/10)."""
    cfg = config or default
    seq_len = cfg.image_size ** 2

    def build():
      if path is not None:
        images, labels = loaders.load_pathfinder(path)
        if images.shape[1] * images.shape[2] != seq_len:
          raise ValueError(f"{path}: images are {images.shape[1:]}, {name} expects {cfg.image_size}^2 pixels")
        order = np.random.default_rng(seed).permutation(len(labels))
        cuts = [int(0.8 * len(order)), int(0.9 * len(order))]
        groups = np.split(order, cuts)
      else:
        images, labels, _ = pathfinder.generate(num_train + num_validation + num_test, seed, cfg)
        groups = np.split(np.arange(len(labels)), [num_train, num_train + num_validation])
      flat = images.reshape(len(images), -1).astype(np.int32)
      return {s: Split(flat[g], labels[g]) for s, g in zip(("train", "validation", "test"), groups)}

    return LRATask(TaskSpec(name, "classifier", 256, seq_len, num_classes=2), build)

  return make


make_pathfinder = _make_pathfinder("lra/pathfinder", pathfinder.PATHFINDER_32)
make_pathx = _make_pathfinder("lra/pathx", pathfinder.PATH_X_128)

for _name, _factory in (("lra/listops", make_listops), ("lra/text", make_text), ("lra/retrieval", make_retrieval),
                        ("lra/image", make_image), ("lra/pathfinder", make_pathfinder), ("lra/pathx", make_pathx)):
  register_task(_name, _factory)
