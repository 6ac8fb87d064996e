"""Random-access record sources for the grain input pipelines (train/data.py).

A source is what `grain.MapDataset.source` reads: `len(source)` records, `source[i]` the i-th one, a dict of
numpy arrays. Three kinds cover the project's data:

- `ArraySource`: rows of equally long in-memory arrays (a task `Split`'s inputs / targets, generated data).
- `TokenFileSource`: a flat binary file of uint16 / uint32 tokens (np.memmap, nothing read up front), cut into
  rows of seq_len + 1 tokens; inputs / targets are the row shifted by one (next-token prediction).
- `GeneratorSource`: a function index -> record with a given length (data computed on demand from a seed).

Sources are picklable (grain's worker processes get a copy): the token file is re-opened lazily in each process
rather than pickled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Record = dict[str, np.ndarray]


class ArraySource:
  """Rows of a dict of equally long arrays: record i is {name: array[i]}.

  Example: `ArraySource({"inputs": split.inputs, "targets": split.targets})` yields
  {"inputs": (L,) int32, "targets": (L,) int32}; `ArraySource.from_split(split)` does the same (and adds
  "inputs2" for two-document tasks).
  """

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    if not arrays:
      raise ValueError("ArraySource needs at least one array")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"ArraySource arrays must be equally long, got lengths {lengths}")
    self._arrays = {name: np.asarray(a) for name, a in arrays.items()}
    self._length = next(iter(lengths.values()))

  @classmethod
  def from_split(cls, split: Any) -> ArraySource:
    """A source over a `aira_jax.tasks.base.Split` (inputs, targets and, when present, inputs2)."""
    arrays = {"inputs": split.inputs, "targets": split.targets}
    if getattr(split, "inputs2", None) is not None:
      arrays["inputs2"] = split.inputs2
    return cls(arrays)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> Record:
    return {name: a[index] for name, a in self._arrays.items()}

  def __repr__(self) -> str:
    shapes = {name: (a.shape, str(a.dtype)) for name, a in self._arrays.items()}
    return f"ArraySource({shapes})"


class TokenFileSource:
  """A flat token file (raw uint16 or uint32, as written by `np.ndarray.tofile`) cut into training rows.

  Row i is tokens[i * seq_len : i * seq_len + seq_len + 1] (consecutive rows share one token, so every token
  but the first is a target exactly once); record i is {"inputs": row[:-1], "targets": row[1:]}, both
  (seq_len,) int32. A file of T tokens gives (T - 1) // seq_len rows; a trailing partial row is dropped.
  """

  def __init__(self, path: str | os.PathLike, seq_len: int, *, dtype: str | np.dtype = np.uint16):
    self.path = os.fspath(path)
    self.seq_len = int(seq_len)
    self.dtype = np.dtype(dtype)
    if self.seq_len < 1:
      raise ValueError(f"seq_len must be positive, got {seq_len}")
    if self.dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
      raise ValueError(f"token files hold uint16 or uint32 tokens, got dtype {self.dtype}")
    if not os.path.exists(self.path):
      raise FileNotFoundError(f"token file {self.path} does not exist")
    num_tokens = os.path.getsize(self.path) // self.dtype.itemsize
    self._length = max(0, (num_tokens - 1) // self.seq_len)
    if self._length == 0:
      raise ValueError(f"token file {self.path} has {num_tokens} tokens: fewer than one row of "
                       f"seq_len + 1 = {self.seq_len + 1}")
    self._tokens: np.memmap | None = None

  def _memmap(self) -> np.memmap:
    if self._tokens is None:
      self._tokens = np.memmap(self.path, dtype=self.dtype, mode="r")
    return self._tokens

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    state["_tokens"] = None  # each process maps the file itself
    return state

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> Record:
    index = int(index)
    if not 0 <= index < self._length:
      raise IndexError(f"row {index} out of range for {self._length} rows")
    start = index * self.seq_len
    row = np.asarray(self._memmap()[start:start + self.seq_len + 1], dtype=np.int32)
    return {"inputs": row[:-1], "targets": row[1:]}

  def __repr__(self) -> str:
    return f"TokenFileSource({self.path!r}, seq_len={self.seq_len}, dtype={self.dtype}, rows={self._length})"


class GeneratorSource:
  """Records computed on demand: record i is `fn(i)` for 0 <= i < length.

  `fn` must be deterministic in its index (resumed iterators re-read records by index) and, for
  worker_count > 0, picklable (a module-level function or a functools.partial of one).
  """

  def __init__(self, fn: Callable[[int], Record], length: int):
    if length < 1:
      raise ValueError(f"GeneratorSource length must be positive, got {length}")
    self._fn = fn
    self._length = int(length)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> Record:
    index = int(index)
    if not 0 <= index < self._length:
      raise IndexError(f"record {index} out of range for {self._length} records")
    return self._fn(index)

  def __repr__(self) -> str:
    return f"GeneratorSource({getattr(self._fn, '__name__', self._fn)!r}, length={self._length})"
