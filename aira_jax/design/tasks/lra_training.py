"""The fixed parts of the LRA harness that do not depend on the candidate: data, the optimiser and the backbone's
forward / eval outputs for the project's one training loop, and cross-lowering of Pallas code for TPU and CUDA
from a CPU host.

Data is generated (ListOps, Pathfinder) or read from the user's files (Text, Retrieval, Image, or released ListOps
/ Pathfinder) by the trusted scorer in the parent (`load_splits`), which writes only what a candidate may see
(`write_public_splits`: inputs, and training labels) for the harness (`read_public_splits`); each split is cut to
its requested size after a seeded shuffle. Pixel tasks (Image, Pathfinder) flatten an image row by row into
image_size^2 tokens, token = intensity + 1 (1..256), so that 0 stays the backbone's padding id: no position is
padding (a black pixel is a real token). Image downsamples CIFAR-10's 32x32 by averaging blocks when image_size is
16 or 8.
Training goes through aira_jax.train (`Trainer`: the same step, loop, preflight and data loader as every other
training run of the project): AdamW (weight decay on matrices only), global-norm clipping at 1, linear warm-up
then cosine decay to 10% of the peak learning rate over `steps`; cross-entropy on the class logits.
"""

from __future__ import annotations

import contextlib
import importlib
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aira_jax.tasks.base import Split
from aira_jax.tasks.lra import listops, pathfinder
from aira_jax.tasks.lra.tokenize import BYTE_VOCAB_SIZE, LISTOPS_VOCAB_SIZE, pad_or_truncate
from aira_jax.train.optimizers import OptimizerConfig
from pallas_kernels import triton_inspect

PIXEL_VOCAB_SIZE = 257  # 0 padding (never used: images fill the sequence), 1..256 intensity 0..255
PIXEL_TASKS = ("image", "pathfinder")
# task -> (vocab_size, num_classes, dual)
TASKS = {"listops": (LISTOPS_VOCAB_SIZE, 10, False), "text": (BYTE_VOCAB_SIZE, 2, False),
         "retrieval": (BYTE_VOCAB_SIZE, 2, True), "image": (PIXEL_VOCAB_SIZE, 10, False),
         "pathfinder": (PIXEL_VOCAB_SIZE, 2, False)}
PATHFINDER_KEYS = ("image_size", "num_distractors", "paddle_length", "num_paddles")
KERNEL_CALLS = {"tpu": "tpu_custom_call", "cuda": triton_inspect.TRITON_CUSTOM_CALL}
PALLAS_BACKEND = {"tpu": "tpu", "cuda": "gpu"}
_BACKEND_MODULES = ("pallas_kernels._dispatch", "pallas_kernels.attention.api", "pallas_kernels.ssm.api",
                    "pallas_kernels.ssm._pallas_common")


def _cut(split: Split, count: int | None, rng: np.random.Generator) -> Split:
  if not count or count >= len(split):
    return split
  pick = np.sort(rng.permutation(len(split))[:count])
  return Split(split.inputs[pick], split.targets[pick], None if split.inputs2 is None else split.inputs2[pick])


def load_splits(settings: dict[str, Any]) -> dict[str, Split]:
  """{"train", "validation", "test"} -> Split for the settings' task, sizes and seed."""
  task, seq_len, seed = settings["task"], settings["seq_len"], settings["seed"]
  counts = {"train": settings["num_train"], "validation": settings["num_validation"], "test": settings["num_test"]}
  if task == "listops" and not settings.get("path"):
    config = listops.ListOpsConfig(min_len=settings["min_length"], max_len=seq_len, max_depth=settings["max_depth"])
    tokens, labels = listops.generate(sum(counts.values()), seed, config)
    splits, start = {}, 0
    for name, n in counts.items():
      splits[name] = Split(pad_or_truncate(tokens[start:start + n], seq_len), labels[start:start + n])
      start += n
    return splits
  from aira_jax.tasks.registry import make_task
  if task in PIXEL_TASKS:
    return _pixel_splits(settings, counts, make_task)
  options = {"path": settings["path"], "seq_len": seq_len}
  if task == "text":
    options["seed"] = seed
  full = make_task(f"lra/{task}", **options).splits()
  rng = np.random.default_rng(seed)
  return {name: _cut(full[name], n, rng) for name, n in counts.items()}


def downsample(pixels: np.ndarray, size: int) -> np.ndarray:
  """(N, S*S) row-major pixels -> (N, size*size), each output pixel the rounded mean of its S/size block."""
  side = int(round(np.sqrt(pixels.shape[1])))
  if size == side:
    return pixels
  if side % size:
    raise ValueError(f"image_size={size} must divide the images' side {side}")
  f = side // size
  blocks = pixels.reshape(len(pixels), size, f, size, f).astype(np.float64).mean(axis=(2, 4))
  return np.rint(blocks).astype(pixels.dtype).reshape(len(pixels), size * size)


def _pixel_splits(settings: dict[str, Any], counts: dict[str, int], make_task) -> dict[str, Split]:
  """Image (CIFAR-10 from path) or Pathfinder (generated, or PNGs from path) as tokens intensity + 1."""
  task, seed, size = settings["task"], settings["seed"], settings["image_size"]
  if task == "image":
    full = make_task("lra/image", path=settings["path"], seed=seed).splits()
  else:
    config = pathfinder.PathfinderConfig(**{key: settings[key] for key in PATHFINDER_KEYS})
    options = dict(path=settings["path"], seed=seed, config=config)
    if not settings.get("path"):  # generate exactly what is asked for
      options.update(num_train=counts["train"], num_validation=counts["validation"], num_test=counts["test"])
    full = make_task("lra/pathfinder", **options).splits()
  rng = np.random.default_rng(seed)
  out = {}
  for name, n in counts.items():
    split = _cut(full[name], n, rng)
    out[name] = Split((downsample(split.inputs, size) + 1).astype(np.int32), split.targets)
  return out


PUBLIC_SPLITS = ("train", "validation", "test")


def write_public_splits(splits: dict[str, Split], root: pathlib.Path) -> None:
  """Writes what a candidate may see to `root`: every split's inputs (and inputs2), and the training labels.

  Validation and test labels are not written: the trusted scorer keeps them."""
  root.mkdir(parents=True, exist_ok=True)
  for name in PUBLIC_SPLITS:
    split = splits[name]
    np.save(root / f"{name}_inputs.npy", np.asarray(split.inputs, np.int32))
    if split.inputs2 is not None:
      np.save(root / f"{name}_inputs2.npy", np.asarray(split.inputs2, np.int32))
  np.save(root / "train_targets.npy", np.asarray(splits["train"].targets, np.int32))


def read_public_splits(root: str | pathlib.Path) -> dict[str, Split]:
  """The splits `write_public_splits` wrote; validation and test get all-zero placeholder targets."""
  root = pathlib.Path(root)
  splits = {}
  for name in PUBLIC_SPLITS:
    inputs = np.load(root / f"{name}_inputs.npy", allow_pickle=False)
    second = root / f"{name}_inputs2.npy"
    inputs2 = np.load(second, allow_pickle=False) if second.exists() else None
    targets = (np.load(root / "train_targets.npy", allow_pickle=False) if name == "train"
               else np.zeros(len(inputs), np.int32))
    splits[name] = Split(inputs, targets, inputs2)
  return splits


def batch_of(split: Split, index: np.ndarray) -> dict[str, np.ndarray]:
  """The examples at `index` as the arrays a step takes ("inputs", "targets" and, dual, "inputs2")."""
  batch = {"inputs": split.inputs[index], "targets": split.targets[index]}
  if split.inputs2 is not None:
    batch["inputs2"] = split.inputs2[index]
  return batch


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """(batch, real rows) covering `split` once; the last batch is filled up with copies of its first row."""
  for start in range(0, len(split), batch_size):
    index = np.arange(start, min(start + batch_size, len(split)))
    real = len(index)
    yield batch_of(split, np.concatenate([index, np.full(batch_size - real, index[0])])), real


def optimizer_config(lr: float, weight_decay: float, warmup_fraction: float) -> OptimizerConfig:
  """The candidate's optimizer: AdamW (b2 0.999; decay on parameters with >= 2 dimensions) after global-norm
  clipping at 1, linear warm-up over `warmup_fraction` of the steps, then cosine to 10% of `lr` at the last."""
  return OptimizerConfig(name="adamw", lr=lr, weight_decay=weight_decay, b1=0.9, b2=0.999, clip_norm=1.0,
                         schedule="warmup_cosine", warmup_fraction=warmup_fraction, min_lr_ratio=0.1)


def backbone_forward(model, batch: dict[str, jax.Array], model_inputs) -> jax.Array:
  """The backbone's logits (batch, num_classes) of a batch (its "inputs2" too for the dual-input tasks)."""
  del model_inputs
  return model(batch["inputs"], batch.get("inputs2"))


def logits_only(logits: jax.Array, targets) -> jax.Array:
  """What the harness's eval step returns: the logits as float32 (the labels stay with the trusted scorer)."""
  del targets
  return logits.astype(jnp.float32)


class _JaxOnBackend:
  """Stands in for the `jax` module inside pallas_kernels, answering `default_backend()` with `backend`."""

  def __init__(self, backend: str):
    self._backend = backend

  def default_backend(self) -> str:
    return self._backend

  def __getattr__(self, name):
    return getattr(jax, name)


@contextlib.contextmanager
def pallas_kernels_target(platform: str):
  """Makes `pallas_kernels` build its Pallas kernels for `platform` ("tpu" or "cuda") from this CPU host: their
  impl="auto" then resolves as on that device. Under "tpu" an abstract mesh of a TPU device kind also
  answers Mosaic's TPU-generation query (needed e.g. for `//` on integers in a hook)."""
  modules = [importlib.import_module(name) for name in _BACKEND_MODULES]
  saved = [module.jax for module in modules]
  for module in modules:
    module.jax = _JaxOnBackend(PALLAS_BACKEND[platform])
  try:
    if platform == "tpu":
      device = jax.sharding.AbstractDevice(device_kind="TPU v5 lite", num_cores=1, platform="tpu")
      with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)):
        yield
    else:
      yield
  finally:
    for module, original in zip(modules, saved):
      module.jax = original


def cross_lower(fn: Callable, args: tuple, platform: str) -> int:
  """Exports jit(fn)(*args) (shape structs) for `platform`, with pallas_kernels targeting it; returns how many
  Pallas kernel calls the lowered module holds. Raises whatever the lowering raises."""
  with pallas_kernels_target(platform):
    text = triton_inspect.export_text(fn, args, platform)
  return len(re.findall(re.escape(f"@{KERNEL_CALLS[platform]}"), text))
