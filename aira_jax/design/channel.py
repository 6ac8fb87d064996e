"""The one-way array channel from a sandboxed candidate to the trusted scorer: predictions out, never metrics.

The sandbox opens a pipe and passes its write end to the child (the descriptor number is in `RESULTS_FD_ENV`).
The child's fixed harness sends arrays with `send_array` in `.npy` format, one after another; the trusted
parent reads them in a thread with `ArrayReader.read(name, shape)`, which accepts exactly the shape the trusted
side asked for, a floating dtype, finite values, and never unpickles (`allow_pickle` is never used: the
header is parsed and the raw bytes are read, at most the expected size). What the child writes is data, not a
result: the trusted side turns it into a metric.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy

RESULTS_FD_ENV = "AIRA_SANDBOX_RESULTS_FD"
_MAX_HEADER = 10_000


class ChannelError(Exception):
  """The child's output on the channel is missing, cut short or not what the trusted side asked for."""


def send_array(array) -> None:
  """Writes `array` (numpy or JAX) to the results channel; RuntimeError when no channel is open."""
  fd = os.environ.get(RESULTS_FD_ENV)
  if fd is None:
    raise RuntimeError(f"no results channel ({RESULTS_FD_ENV} is not set): run under aira_jax.design.sandbox")
  array = np.ascontiguousarray(np.asarray(array))
  with os.fdopen(os.dup(int(fd)), "wb") as f:  # a pipe: no file position, so not np.save / tofile
    npy.write_array_header_1_0(f, npy.header_data_from_array_1_0(array))
    f.write(memoryview(array).cast("B"))


class ArrayReader:
  """Reads the arrays the child sent, in order, checking each against what the trusted side expects."""

  def __init__(self, stream: BinaryIO):
    self.stream = stream

  def _exact(self, size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
      chunk = self.stream.read(size - len(data))
      if not chunk:
        raise ChannelError(f"{what}: the output ended after {len(data)} of {size} bytes")
      data += chunk
    return bytes(data)

  def read(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The next array, as float32 of exactly `shape`; ChannelError naming `name` otherwise."""
    try:
      version = npy.read_magic(self.stream)
      if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
      read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
      got_shape, fortran, dtype = read_header(self.stream, max_header_size=_MAX_HEADER)
    except (ValueError, EOFError, SyntaxError, TypeError) as e:
      raise ChannelError(f"{name}: no readable .npy array in the output ({e})") from None
    if got_shape != tuple(shape):
      raise ChannelError(f"{name}: expected an array of shape {tuple(shape)}, got {got_shape}")
    if dtype.kind != "f" or dtype.hasobject or fortran:
      raise ChannelError(f"{name}: expected floating-point values in C order, got dtype {dtype}")
    values = np.frombuffer(self._exact(int(np.prod(shape)) * dtype.itemsize, name), dtype=dtype).reshape(shape)
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
      raise ChannelError(f"{name}: non-finite values (nan or inf)")
    return values

  def drain(self) -> int:
    """Reads and drops whatever is left (so a child that sends too much does not block); bytes dropped."""
    dropped = 0
    while chunk := self.stream.read(1 << 20):
      dropped += len(chunk)
    return dropped
