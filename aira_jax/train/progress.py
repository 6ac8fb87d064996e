"""A one-line training progress display: step/total, loss, tokens/s, elapsed time and ETA.

On a terminal the line is rewritten in place (carriage return); on a file or a pipe (a job log, CI) a plain
line is written every `every` steps instead, so logs are not flooded with carriage returns. Rates are
averages since the first update, which makes the ETA steady once compilation (the slow first step) is
behind it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any


def format_rate(value: float) -> str:
  """12345.6 -> "12.3k"."""
  for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
    if value >= scale:
      return f"{value / scale:.1f}{suffix}"
  return f"{value:.1f}"


def format_duration(seconds: float) -> str:
  """3725.2 -> "1:02:05"."""
  seconds = max(0, int(round(seconds)))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _is_tty(stream: IO[str]) -> bool:
  isatty = getattr(stream, "isatty", None)
  try:
    return bool(isatty and isatty())
  except ValueError:  # A closed stream.
    return False


class ProgressDisplay:
  """Shows training progress as one line.

  Args:
    total_steps: the step the run ends at.
    stream: where to write (default: sys.stderr).
    tokens_per_step: when given, tokens/s is shown.
    every: on a non-terminal stream, write a line every `every` steps (default: about 20 lines per run); the
      last step is always written. On a terminal every update redraws the line.
    clock: seconds (a test can pass a fake one).
  """

  def __init__(self, total_steps: int, stream: IO[str] | None = None, *, tokens_per_step: int | None = None,
               every: int | None = None, clock: Callable[[], float] = time.perf_counter):
    self.total_steps = total_steps
    self.stream = stream if stream is not None else sys.stderr
    self.tokens_per_step = tokens_per_step
    self.tty = _is_tty(self.stream)
    self.every = every if every is not None else max(1, total_steps // 20)
    self._clock = clock
    self._start: tuple[int, float] | None = None
    self._width = 0

  def format_line(self, step: int, loss: float | None, elapsed: float, steps_done: int) -> str:
    width = len(str(self.total_steps))
    percent = 100 * step / self.total_steps if self.total_steps else 100.0
    parts = [f"step {step:>{width}}/{self.total_steps} ({percent:3.0f}%)"]
    if loss is not None:
      parts.append(f"loss {loss:.4f}")
    rate = steps_done / elapsed if steps_done > 0 and elapsed > 0 else None
    if rate is not None and self.tokens_per_step:
      parts.append(f"{format_rate(rate * self.tokens_per_step)} tok/s")
    parts.append(f"elapsed {format_duration(elapsed)}")
    eta = format_duration((self.total_steps - step) / rate) if rate else "?"
    parts.append(f"eta {eta}")
    return " | ".join(parts)

  def update(self, step: int, loss: Any = None) -> None:
    """Reports that `step` is done. `loss` may be a JAX array; it is converted (a sync) only when shown."""
    now = self._clock()
    if self._start is None:
      self._start = (step, now)
    last = step >= self.total_steps
    if not self.tty and step % self.every and not last:
      return
    start_step, start_time = self._start
    line = self.format_line(step, None if loss is None else float(loss), now - start_time, step - start_step)
    if self.tty:
      padding = " " * max(0, self._width - len(line))
      self._width = len(line)
      self.stream.write("\r" + line + padding)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def close(self) -> None:
    """Ends the line on a terminal, so later output starts on a fresh one."""
    if self.tty and self._width:
      self.stream.write("\n")
      self.stream.flush()
      self._width = 0
