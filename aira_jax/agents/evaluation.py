"""The evaluation queue shared by every agent of an ensemble: a pool of workers and a cache of results.

An evaluator is a plain function `payload -> EvalResult` (compose trains a layout, design runs code in the
sandbox). The queue runs at most `workers` evaluations at once (one per device, say) and answers a payload it
has already seen, or is evaluating, from the same result (by `key(payload)`, e.g. a layout's canonical text),
so agents proposing duplicates cost nothing.

Whose fault (aira_jax.faults): a ValueError from the evaluator is the candidate's (an invalid payload) and
becomes a cached buggy result, as does a buggy `EvalResult` the evaluator returns (divergence, a failed
sandbox stage). Any other exception is an infrastructure fault: the evaluation is tried again up to `retries`
times, then the future raises `InfrastructureError`, and nothing is cached, so a later submit (or a resumed
run) evaluates the payload again. Ctrl-C (`Interrupted`) is raised at once, uncached.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import traceback
from collections.abc import Callable

from aira_jax.faults import Interrupted, retry_infrastructure


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """The outcome of evaluating one payload.

  metric: the fitness (None when buggy); is_buggy / error: whether and why it failed; output: log excerpt;
  seconds: evaluation wall time; cached: answered from the cache (a duplicate).
  """

  metric: float | None
  is_buggy: bool = False
  error: str | None = None
  output: str = ""
  seconds: float = 0.0
  cached: bool = False


class EvaluationQueue:
  """Runs `evaluate(payload)` on a thread pool of `workers`, de-duplicating payloads by `key`; infrastructure
  faults are tried again `retries` times, `retry_pause_s` apart (module docstring)."""

  def __init__(self, evaluate: Callable[[str], EvalResult], *, workers: int = 1,
               key: Callable[[str], str] = lambda payload: payload, retries: int = 2, retry_pause_s: float = 1.0):
    if workers < 1:
      raise ValueError(f"workers must be at least 1, got {workers}")
    self._evaluate = evaluate
    self._key = key
    self.retries, self.retry_pause_s = retries, retry_pause_s
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evaluate")
    self._futures: dict[str, concurrent.futures.Future] = {}
    self._lock = threading.Lock()
    self.evaluations = 0  # evaluations actually run (not answered from the cache)

  def seed(self, payload: str, result: EvalResult) -> None:
    """Records a known result (e.g. from a resumed journal) so the payload is not evaluated again."""
    future = concurrent.futures.Future()
    future.set_result(result)
    with self._lock:
      self._futures.setdefault(self._safe_key(payload), future)

  def submit(self, payload: str) -> concurrent.futures.Future:
    """A future of the payload's EvalResult (a cached one has `cached=True`); it raises InfrastructureError
    or Interrupted when the evaluation failed through no fault of the payload's."""
    key = self._safe_key(payload)
    with self._lock:
      known = self._futures.get(key)
      if known is None or _failed(known):
        self.evaluations += 1
        self._futures[key] = self._pool.submit(self._run, payload)
        return self._futures[key]
    cached = concurrent.futures.Future()
    known.add_done_callback(lambda done: _copy_as_cached(done, cached))
    return cached

  def evaluate(self, payload: str) -> EvalResult:
    """Submits and waits."""
    return self.submit(payload).result()

  def shutdown(self, *, cancel_pending: bool = False) -> None:
    self._pool.shutdown(wait=not cancel_pending, cancel_futures=cancel_pending)

  def _safe_key(self, payload: str) -> str:
    try:
      return self._key(payload)
    except Exception:  # noqa: BLE001  (an unparsable payload is its own key; the evaluator reports it)
      return payload

  def _run(self, payload: str) -> EvalResult:
    start = time.perf_counter()
    try:
      result = retry_infrastructure(lambda: self._evaluate(payload), retries=self.retries,
                                    pause_s=self.retry_pause_s)
    except ValueError as e:  # the candidate's failure (an invalid payload), recorded as a buggy result
      lines = traceback.format_exception(e)
      return EvalResult(metric=None, is_buggy=True, error=f"{type(e).__name__}: {e}"[:500],
                        output="".join(lines)[-2000:], seconds=time.perf_counter() - start)
    if result.seconds == 0.0:
      result = dataclasses.replace(result, seconds=time.perf_counter() - start)
    return result


def _failed(future: concurrent.futures.Future) -> bool:
  """Whether `future` ended without a result (an infrastructure fault, Ctrl-C, cancelled): not a cache entry."""
  return future.done() and (future.cancelled() or future.exception() is not None)


def _copy_as_cached(done: concurrent.futures.Future, cached: concurrent.futures.Future) -> None:
  """Gives `cached` the outcome of `done`: its result marked cached, or its exception."""
  if done.cancelled():
    cached.set_exception(Interrupted("the evaluation was cancelled"))
  elif done.exception() is not None:
    cached.set_exception(done.exception())
  else:
    cached.set_result(dataclasses.replace(done.result(), cached=True))
