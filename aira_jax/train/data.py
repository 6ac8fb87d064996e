"""Grain input pipelines for training: seeded, per-process sliced, resumable batches, and global jax.Arrays.

`make_loader` turns a random-access source (train/sources.py) into an endless (or `num_epochs`-long) stream
of process-local batches, built from `grain.MapDataset` transformations:

    source -> shuffle(seed) -> repeat(num_epochs) -> [truncate to whole global batches]
           -> batch(batch_size // process_count) -> [process_index::process_count] -> to_iter_dataset

Global batch g is the concatenation, in process order, of local batch g * process_count + p of every process
p, so the processes together read each global batch once and no process reads another's rows. Shuffling is a
seeded permutation per epoch (grain folds the epoch into the seed), so every row appears once per epoch.

The returned `Loader` is checkpointable: `get_state()` is a small JSON-serializable dict and `set_state()` on
a fresh loader built with the same arguments continues with exactly the batches an uninterrupted loader would
have yielded. The state is the same on every process (all processes advance in lockstep through their own
slices), so saving the primary process's state and restoring it everywhere is correct.

`global_batch` assembles the processes' local batches into global `jax.Array`s sharded over the mesh's batch
axes (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

from aira_jax.train.mesh import batch_sharding
from aira_jax.train.sources import ArraySource, GeneratorSource, Record, TokenFileSource

__all__ = [
    "ArraySource", "TokenFileSource", "GeneratorSource", "Loader", "make_loader", "batch_sharding",
    "global_batch",
]

_STATE_VERSION = 1


class Loader(Iterator[Record]):
  """An iterator of process-local batches ({name: (batch_size // process_count, ...) array}) with
  checkpointable position. Build with `make_loader`. `batches_per_epoch` is the number of whole global
  batches in one pass over the source (batches run on across epoch boundaries when repeating)."""

  def __init__(self, dataset: grain.IterDataset, *, spec: dict[str, Any], local_batch_size: int,
               batches_per_epoch: int):
    self._dataset = dataset
    self._iterator = iter(dataset)
    self._spec = spec
    self.local_batch_size = local_batch_size
    self.batches_per_epoch = batches_per_epoch

  def __iter__(self) -> Loader:
    return self

  def __next__(self) -> Record:
    return next(self._iterator)

  def get_state(self) -> dict[str, Any]:
    """The position after the last batch returned, as a JSON-serializable dict."""
    return {"version": _STATE_VERSION, "spec": dict(self._spec), "iterator": self._iterator.get_state()}

  def set_state(self, state: dict[str, Any]) -> None:
    """Moves to the position saved by `get_state` of a loader built with the same source length, batch size,
    seed, shuffle, epochs and process count; ValueError naming the differences otherwise."""
    if state.get("version") != _STATE_VERSION:
      raise ValueError(f"loader state version {state.get('version')!r} is not {_STATE_VERSION}")
    saved = state.get("spec", {})
    diffs = {k: (saved.get(k), v) for k, v in self._spec.items() if saved.get(k) != v}
    if diffs:
      detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diffs.items()))
      raise ValueError(f"loader state was saved by a differently configured loader ({detail})")
    self._iterator.set_state(state["iterator"])

  def close(self) -> None:
    """Stops worker processes / prefetch threads (also done on garbage collection)."""
    close = getattr(self._iterator, "close", None)
    if close is not None:
      close()


def make_loader(source: Any, *, batch_size: int, seed: int, shuffle: bool = True, num_epochs: int | None = None,
                process_index: int | None = None, process_count: int | None = None, drop_remainder: bool = True,
                worker_count: int = 0, read_threads: int = 4, prefetch_buffer_size: int = 16) -> Loader:
  """A `Loader` over `source` (anything with `len` and integer `__getitem__` returning a dict of arrays).

  Args:
    batch_size: the global batch size; each process gets batch_size // process_count rows per batch.
    seed: the shuffle seed (each epoch uses a different, deterministic permutation).
    shuffle: False keeps the source order.
    num_epochs: passes over the source; None repeats forever.
    process_index, process_count: this process's slice; default `jax.process_index()` / `jax.process_count()`.
    drop_remainder: drop the last global batch of a finite stream when it is short (required when
      process_count > 1, so that every process runs the same number of steps).
    worker_count: grain worker processes (0 = read in this process, with `read_threads` threads).
    read_threads, prefetch_buffer_size: grain `ReadOptions` for in-process reading.
  """
  process_index = jax.process_index() if process_index is None else int(process_index)
  process_count = jax.process_count() if process_count is None else int(process_count)
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} must be a positive multiple of process_count {process_count}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f"num_epochs must be positive or None, got {num_epochs}")
  if not drop_remainder and process_count > 1 and num_epochs is not None:
    raise ValueError("drop_remainder=False with several processes would give them different step counts")
  num_records = len(source)
  if num_records < 1:
    raise ValueError(f"source {source!r} is empty")
  local_batch_size = batch_size // process_count

  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  if num_epochs is not None and drop_remainder:
    ds = ds[:len(ds) // batch_size * batch_size]
  ds = ds.batch(local_batch_size, drop_remainder=drop_remainder)
  if process_count > 1:
    ds = ds[process_index::process_count]
  iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_buffer_size))
  if worker_count > 0:
    _ensure_absl_flags_parsed()
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))

  spec = {"num_records": num_records, "batch_size": batch_size, "seed": seed, "shuffle": shuffle,
          "num_epochs": num_epochs, "process_count": process_count, "drop_remainder": drop_remainder,
          "worker_count": worker_count}
  return Loader(iter_ds, spec=spec, local_batch_size=local_batch_size,
                batches_per_epoch=num_records // batch_size)


def _ensure_absl_flags_parsed() -> None:
  """grain's worker processes read absl flags; outside an absl app nothing parses them, so use defaults."""
  from absl import flags  # grain depends on absl

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def global_batch(local_batch: Any, mesh: Mesh, sharding: Sharding | PartitionSpec | None = None) -> Any:
  """Global `jax.Array`s from this process's rows of every leaf of `local_batch` (a pytree of numpy arrays
  with leading dimension batch_size // process_count), placed with `sharding` (default `batch_sharding`;
  a PartitionSpec is taken on `mesh`). The global leading dimension is batch_size."""
  if sharding is None:
    sharding = batch_sharding(mesh)
  elif isinstance(sharding, PartitionSpec):
    sharding = NamedSharding(mesh, sharding)
  if jax.process_count() == 1:  # the local rows are the global batch: one transfer for the whole tree
    return jax.device_put(local_batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
