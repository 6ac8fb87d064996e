"""Whose fault it is, and how a run stops: candidate faults, infrastructure faults and Ctrl-C.

A candidate's fault (an invalid payload: ValueError; divergence or a failed sandbox stage: a buggy result the
evaluator returns) is part of the search: it is recorded, cached and shown to the agents. An infrastructure
fault (any other exception from the project's own evaluator code, a lost device, a store that cannot be
written) is not the candidate's: it is an `InfrastructureError`, tried again a few times
(`retry_infrastructure`) and never recorded as the candidate's result, so a resumed run evaluates it again.

Ctrl-C: inside `stop_on_ctrl_c()` the first SIGINT only sets a process-wide flag. Long loops (training steps,
the sandbox's wait, the agents' step loop, the race, the scale stage) call `check_stop()`, which raises
`Interrupted`, so a run stops within one training step and writes what it has. A second SIGINT stops at once:
with `last_words`, that line is printed and the process exits with status 130 (the journal and the store are
written crash-safely); without, it raises KeyboardInterrupt. A flag rather than KeyboardInterrupt because the
interpreter may raise that inside a finalizer the main thread happens to run, where it is printed and lost,
and it never reaches the worker threads that run evaluations. What a flag cannot do: stop a call into XLA
(a compilation) before it returns; the second Ctrl-C is for that.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_STOP = threading.Event()
_HANDLER_INSTALLED = threading.Event()


class InfrastructureError(RuntimeError):
  """A fault of the machinery, not of the candidate being evaluated: retried, never cached as its result."""


class Interrupted(KeyboardInterrupt):
  """The run was asked to stop (Ctrl-C). A KeyboardInterrupt, so `except Exception` blocks let it through."""


def stop_requested() -> bool:
  """Whether Ctrl-C asked the run to stop."""
  return _STOP.is_set()


def request_stop() -> None:
  """Asks every long loop of the process to stop, as Ctrl-C does."""
  _STOP.set()


def check_stop() -> None:
  """Raises `Interrupted` when the run was asked to stop; long loops call this once per step."""
  if _STOP.is_set():
    raise Interrupted("stopped by Ctrl-C")


def _exit_now(line: str) -> None:
  """Prints `line` (with os.write: a signal handler may interrupt a print) and exits with status 130."""
  os.write(2, (line + "\n").encode())
  os._exit(130)


@contextlib.contextmanager
def stop_on_ctrl_c(last_words: Callable[[], str] | None = None):
  """Within the block, the first Ctrl-C sets the stop flag and a second one stops at once (module docstring).

  Only the outermost block on the main thread installs the handler (an inner one, e.g. the ensemble's inside a
  CLI's, does nothing); it clears the flag on entry and exit and restores the previous handler.
  """
  if threading.current_thread() is not threading.main_thread() or _HANDLER_INSTALLED.is_set():
    yield
    return

  def on_sigint(signum, frame):
    if not _STOP.is_set():
      _STOP.set()
    elif last_words is None:
      raise KeyboardInterrupt
    else:
      _exit_now(last_words())

  _STOP.clear()
  previous = signal.signal(signal.SIGINT, on_sigint)
  _HANDLER_INSTALLED.set()
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
    _HANDLER_INSTALLED.clear()
    _STOP.clear()


def import_entry_point(module: str) -> Callable[..., int]:
  """`module.main` for `python -m ...`, imported with Ctrl-C watched. Importing jax and flax takes seconds, and a
  KeyboardInterrupt raised meanwhile can land in a finalizer or garbage-collection callback, where the
  interpreter prints a traceback and drops it; so a Ctrl-C here is only recorded, and once the imports are done
  the process prints one line and exits with status 130 (no run directory exists yet)."""
  seen: list[int] = []
  previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
  try:
    main = importlib.import_module(module).main
  finally:
    signal.signal(signal.SIGINT, previous)
  if seen:
    print("interrupted before the run directory was made; nothing to resume", file=sys.stderr)
    sys.exit(130)
  return main


def retry_infrastructure(evaluate: Callable[[], T], *, retries: int = 2, pause_s: float = 1.0,
                         candidate_errors: tuple[type[BaseException], ...] = (ValueError,)) -> T:
  """`evaluate()`, where any exception but `candidate_errors` (the candidate's fault, raised as it is) and
  `Interrupted` is an infrastructure fault: tried again up to `retries` times, `pause_s` apart, then raised as
  InfrastructureError saying how often it failed."""
  failures = 0
  while True:
    check_stop()
    try:
      return evaluate()
    except candidate_errors:
      raise
    except Exception as e:  # noqa: BLE001  (not the candidate's: tried again)
      failures += 1
      if failures > retries:
        message = str(e) if isinstance(e, InfrastructureError) else f"{type(e).__name__}: {e}"
        raise InfrastructureError(f"{message} (failed {failures} times)") from e
    _STOP.wait(pause_s)  # returns early on Ctrl-C; check_stop() then raises
