"""Metric loggers for the trainer: one compact stdout line, JSON lines on disk, TensorBoard, or several at once.

Every logger takes `log(step, metrics)` with metrics a dict of names to numbers, which may be JAX arrays.
Arrays are turned into Python floats with `float()` once per `log` call (`MultiLogger` converts once and
hands the same floats to every logger). `float()` on a device array waits for the step that produced it, so
the trainer should call `log` only on logging steps, not every step, to keep dispatch running ahead.
`make_loggers(["stdout", "jsonl"], run_dir)` builds the usual set by name. `ProgressDisplay` (a one-line
progress bar, in progress.py) is re-exported here.
"""

from __future__ import annotations

import importlib
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol, runtime_checkable

from aira_jax.train.progress import ProgressDisplay, format_rate


@runtime_checkable
class MetricLogger(Protocol):
  """Anything that records metrics at a step and can be closed."""

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    ...

  def close(self) -> None:
    ...


def to_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Each value as a Python float. Syncs: a JAX array waits for the computation that produces it."""
  return {name: float(value) for name, value in metrics.items()}


def format_number(value: float) -> str:
  """Compact number for a log line: 4 significant digits, scientific only for very small or large values."""
  if not math.isfinite(value):
    return str(value)
  if value == int(value) and abs(value) < 1e6:
    return str(int(value))
  if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
    return f"{value:.3e}"
  return f"{value:.4g}"


class StdoutLogger:
  """One compact line per logged step, e.g. `step 100 | loss 2.345 | lr 3.000e-04 | 12.3 step/s | 45.6k tok/s`.

  Args:
    every: log only steps that are multiples of `every` (others return without converting, so no sync).
    tokens_per_step: when given, tokens/s is shown next to steps/s.
    stream: where lines go (default: sys.stdout, looked up at each call so capture works).
    clock: seconds, for the rates (a test can pass a fake one).
  """

  def __init__(self, every: int = 1, *, tokens_per_step: int | None = None, stream: IO[str] | None = None,
               clock: Callable[[], float] = time.perf_counter):
    if every < 1:
      raise ValueError(f"every must be >= 1, got {every}")
    self.every = every
    self.tokens_per_step = tokens_per_step
    self._stream = stream
    self._clock = clock
    self._last: tuple[int, float] | None = None

  def format_line(self, step: int, metrics: Mapping[str, float], steps_per_second: float | None) -> str:
    parts = [f"step {step}"] + [f"{name} {format_number(value)}" for name, value in metrics.items()]
    if steps_per_second is not None:
      parts.append(f"{steps_per_second:.2f} step/s")
      if self.tokens_per_step:
        parts.append(f"{format_rate(steps_per_second * self.tokens_per_step)} tok/s")
    return " | ".join(parts)

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    if step % self.every:
      return
    values = to_floats(metrics)
    now = self._clock()
    rate = None
    if self._last is not None and step > self._last[0] and now > self._last[1]:
      rate = (step - self._last[0]) / (now - self._last[1])
    self._last = (step, now)
    stream = self._stream or sys.stdout
    stream.write(self.format_line(step, values, rate) + "\n")
    stream.flush()

  def close(self) -> None:
    (self._stream or sys.stdout).flush()


def _json_safe(value: float) -> float | str:
  """NaN and infinities as the strings "nan", "inf", "-inf" (strict JSON has no literal for them)."""
  return value if math.isfinite(value) else str(value)


class JsonlLogger:
  """Appends one JSON object per call to `path`: {"step": 12, "time": <unix seconds>, "metrics": {...}}.

  Each line is flushed as it is written, so a crashed run keeps every logged step and another process can
  tail the file. The file is appended to, so a resumed run continues it. Non-finite values are written as
  strings ("nan", "inf") to keep the file strict JSON.
  """

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._file = self.path.open("a", encoding="utf-8")

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    record = {"step": int(step), "time": time.time(),
              "metrics": {name: _json_safe(v) for name, v in to_floats(metrics).items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def close(self) -> None:
    if not self._file.closed:
      self._file.close()


_TENSORBOARD_BACKENDS = ("tensorboardX", "torch.utils.tensorboard", "tensorflow")


def _import_tensorboard() -> tuple[str, Any]:
  """The first importable TensorBoard writer library, as (name, module)."""
  for name in _TENSORBOARD_BACKENDS:
    try:
      return name, importlib.import_module(name)
    except ImportError:
      continue
  raise ImportError("TensorBoardLogger needs a TensorBoard writer and none of "
                    f"{', '.join(_TENSORBOARD_BACKENDS)} is importable: pip install tensorboardX "
                    "(or choose the 'jsonl' logger instead)")


class TensorBoardLogger:
  """Scalars to TensorBoard event files under `logdir`, through tensorboardX, PyTorch or TensorFlow (the
  first importable, imported only when the logger is made; none is a dependency of aira_jax)."""

  def __init__(self, logdir: str | pathlib.Path):
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    self.backend, module = _import_tensorboard()
    if self.backend == "tensorflow":
      self._tf = module
      self._writer = module.summary.create_file_writer(str(self.logdir))
    else:
      self._writer = module.SummaryWriter(str(self.logdir))

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    values = to_floats(metrics)
    if self.backend == "tensorflow":
      with self._writer.as_default():
        for name, value in values.items():
          self._tf.summary.scalar(name, value, step=step)
    else:
      for name, value in values.items():
        self._writer.add_scalar(name, value, global_step=step)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MultiLogger:
  """Fans each call out to several loggers, converting the metrics to floats once for all of them."""

  def __init__(self, loggers: Sequence[MetricLogger]):
    self.loggers = list(loggers)

  def log(self, step: int, metrics: Mapping[str, Any]) -> None:
    values = to_floats(metrics)
    for logger in self.loggers:
      logger.log(step, values)

  def close(self) -> None:
    for logger in self.loggers:
      logger.close()


LOGGER_NAMES = ("stdout", "jsonl", "tensorboard")

__all__ = ["MetricLogger", "StdoutLogger", "JsonlLogger", "TensorBoardLogger", "MultiLogger", "ProgressDisplay",
           "make_loggers", "to_floats", "LOGGER_NAMES"]


def make_loggers(specs: Sequence[str], run_dir: str | pathlib.Path, *, every: int = 1,
                 tokens_per_step: int | None = None) -> MultiLogger:
  """Loggers by name: "stdout" (every `every` steps), "jsonl" (run_dir/metrics.jsonl) and "tensorboard"
  (run_dir/tensorboard). Unknown names raise ValueError listing the known ones."""
  unknown = [s for s in specs if s not in LOGGER_NAMES]
  if unknown:
    raise ValueError(f"unknown logger(s) {unknown}; choose from {list(LOGGER_NAMES)}")
  run_dir = pathlib.Path(run_dir)
  loggers: list[MetricLogger] = []
  for spec in specs:
    if spec == "stdout":
      loggers.append(StdoutLogger(every, tokens_per_step=tokens_per_step))
    elif spec == "jsonl":
      loggers.append(JsonlLogger(run_dir / "metrics.jsonl"))
    else:
      loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
  return MultiLogger(loggers)
