"""The Ray backend's workers: a pool of actors, calls on them, surviving losing one (ray_cluster.py connects).

`WorkerPool(worker_class, args, size=, config=)` starts `size` actors of `worker_class(*args)` (a subclass of
`RemoteWorker`), each holding `executor.resources`; an actor joins the pool's idle workers once Ray has placed
it and it answers (a call never waits on an actor the cluster cannot place while another is idle; while none
is placed, a notice every 30 s says so). `pool.call("method", ...)` runs one call on an idle worker, blocking
the calling thread (the pipelines call it from their evaluation threads, one per worker):

- the call's own exception comes back as itself (a ValueError stays the candidate's, an InfrastructureError
  the evaluator's: aira_jax.faults);
- a worker that dies during the call (its process killed, its node lost, its creation failed) is dropped and
  the call raises `WorkerLost`, an InfrastructureError: the caller's retry runs it again on another worker, and
  since results are written by the driver only when a call returns, a lost call leaves nothing behind and is
  never recorded twice. A replacement actor is started at once and joins when Ray has placed it (wherever
  the resources are; on a cluster that lost a node, possibly never); when no worker is left and none can be
  started, calls raise InfrastructureError;
- Ctrl-C (aira_jax.faults.check_stop, polled every 0.2 s) kills the busy actor at once, so a long training
  run stops without waiting for its next step, and raises Interrupted.

Actors are started with no restarts and no task retries of Ray's own: the pool decides what is retried, so a
call is never run twice behind its back.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from aira_jax.executor.config import ExecutorConfig
from aira_jax.executor.ray_cluster import import_ray, ray_cluster, worker_count
from aira_jax.faults import InfrastructureError, Interrupted, check_stop

_POLL_S = 0.2
_NOTICE_AFTER_S = 30.0


class WorkerLost(InfrastructureError):
  """A Ray worker died during a call (process killed, node lost, actor creation failed); it was replaced."""


class RemoteWorker:
  """Base of the pipelines' actor classes: says where it runs."""

  def where(self) -> dict[str, Any]:
    """This worker's Ray node id, host name and process id."""
    import ray
    return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}


def actor_options(resources: Mapping[str, float]) -> dict[str, Any]:
  """Ray actor options holding `resources` (CPU and GPU by their own keywords, TPU and others as custom
  resources), with Ray's restarts and retries off (the pool retries) and a second thread for `where`."""
  custom = {name: float(amount) for name, amount in resources.items() if name not in ("CPU", "GPU")}
  options: dict[str, Any] = {"num_cpus": float(resources.get("CPU", 0)), "max_restarts": 0, "max_task_retries": 0,
                             "max_concurrency": 2}
  if "GPU" in resources:
    options["num_gpus"] = float(resources["GPU"])
  if custom:
    options["resources"] = custom
  return options


def _lost_reason(error: Exception) -> str:
  """A one-line reason from Ray's long actor-death message."""
  text = " ".join(str(error).split())
  for marker in ("The actor died because of an error raised in its creation task",
                 "The actor is dead because its worker process has died",
                 "The actor is dead because its node has died", "The actor died unexpectedly",
                 "The node", "The worker died"):
    if marker in text:
      start = text.index(marker)
      return text[start:start + 300]
  return text[:300]


class WorkerPool:
  """`size` actors of `worker_class(*args)` with `config.resources` each; `call` runs one method on an idle
  one (module docstring). `worker_losses` counts calls lost to a dead worker, `failed_starts` replacements
  that could not be started."""

  def __init__(self, worker_class: type[RemoteWorker], args: tuple, *, size: int, config: ExecutorConfig,
               notice: Callable[[str], None] | None = None):
    ray = import_ray()
    self._ray = ray
    self._actor_class = ray.remote(worker_class).options(**actor_options(config.resources))
    self._args = args
    self._resources = dict(config.resources)
    self._notice = notice
    self.size = size
    self.worker_losses = self.failed_starts = 0
    self._idle: queue.Queue = queue.Queue()
    self._busy: dict[int, Any] = {}  # thread id -> the actor it is calling
    self._lock = threading.Lock()
    self._actors: list = []  # the placed workers, idle or busy
    self._starting = 0  # workers Ray has not placed yet
    self._closed = False
    for _ in range(size):
      self._start_worker()

  def _start_worker(self) -> None:
    """Starts an actor, which joins the idle workers once Ray has placed it and it answers; a call never waits
    on a worker that cannot be placed (busy cluster, a lost node's resources) while another one is idle."""
    ray = self._ray
    with self._lock:
      self._starting += 1
    actor = self._actor_class.remote(*self._args)
    ready = actor.where.remote()

    def join() -> None:
      placed = False
      try:
        while not self._closed and not placed:
          placed = bool(ray.wait([ready], timeout=1.0)[0])
        if placed:
          ray.get(ready)
      except BaseException:  # noqa: BLE001  (its creation failed, or Ray shut down: go on without it)
        placed = False
        with self._lock:
          self.failed_starts += 1
      with self._lock:
        self._starting -= 1
        if placed and not self._closed:
          self._actors.append(actor)
          self._idle.put(actor)
          return
      with contextlib.suppress(Exception):
        ray.kill(actor)

    threading.Thread(target=join, name="ray-worker-start", daemon=True).start()

  def _replace(self, dead) -> None:
    """Drops `dead` and starts another worker in its place."""
    with self._lock:
      if dead in self._actors:
        self._actors.remove(dead)
    self._start_worker()

  def _take(self):
    started, next_notice = time.monotonic(), _NOTICE_AFTER_S
    while True:
      check_stop()
      try:
        return self._idle.get(timeout=_POLL_S)
      except queue.Empty:
        waited = time.monotonic() - started
        with self._lock:
          placed, starting = len(self._actors), self._starting
        if not placed and not starting:
          raise InfrastructureError("no Ray worker is left: every worker was lost and none could be started "
                                    "again (the errors above say why)") from None
        if not placed and waited >= next_notice and self._notice is not None:
          self._notice(f"executor: waiting {waited:.0f} s for Ray to place a worker holding {self._resources}: the "
                       "cluster is busy or lacks those resources (Ctrl-C stops)")
          next_notice += _NOTICE_AFTER_S

  def call(self, method: str, *args: Any) -> Any:
    """`method(*args)` on an idle worker; its result, or its own exception; WorkerLost or Interrupted."""
    ray = self._ray
    actor = self._take()
    with self._lock:
      self._busy[threading.get_ident()] = actor
    try:
      ref = getattr(actor, method).remote(*args)
      while not ray.wait([ref], timeout=_POLL_S)[0]:
        check_stop()
      return ray.get(ref)
    except ray.exceptions.RayTaskError as e:  # the method raised: give the caller its own exception
      cause = e.cause if isinstance(e.cause, Exception) else None
      if cause is None:
        raise InfrastructureError(f"a Ray worker failed in {method}: {str(e).strip().splitlines()[-1][:300]}") \
            from None
      raise cause from None
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError) as e:
      with self._lock:
        self.worker_losses += 1
      self._replace(actor)
      actor = None
      raise WorkerLost(f"a Ray worker was lost during {method} and replaced: {_lost_reason(e)}") from None
    except Interrupted:
      ray.kill(actor)
      self._replace(actor)
      actor = None
      raise
    finally:
      with self._lock:
        self._busy.pop(threading.get_ident(), None)
      if actor is not None:
        self._idle.put(actor)

  def describe(self) -> str:
    """Where calls ran, for reports: the workers, what each held, and calls lost with a worker."""
    lost = f"; {self.worker_losses} call(s) lost with their worker and run again" if self.worker_losses else ""
    return f"Ray workers ({self.size} holding {self._resources} each{lost})"

  def busy_workers(self) -> list[dict[str, Any]]:
    """Where the workers running a call now are (`RemoteWorker.where`; they answer while busy)."""
    with self._lock:
      actors = list(self._busy.values())
    return self._ray.get([actor.where.remote() for actor in actors])

  def all_workers(self) -> list[dict[str, Any]]:
    """Where every live worker is."""
    with self._lock:
      actors = list(self._actors)
    return self._ray.get([actor.where.remote() for actor in actors])

  def close(self) -> None:
    """Kills every worker (a busy one's call then raises WorkerLost) and stops replacements."""
    with self._lock:
      self._closed = True
      actors, self._actors = list(self._actors), []
    for actor in actors:
      with contextlib.suppress(Exception):
        self._ray.kill(actor)


@contextlib.contextmanager
def worker_pool(config: ExecutorConfig, worker_class: type[RemoteWorker], args: tuple, *, what: str,
                stream: IO[str]) -> Iterator[WorkerPool]:
  """A `WorkerPool` of `worker_class(*args)` on the configured cluster for the block, sized by `worker_count`;
  prints where `what` runs, and at the end how many calls were lost with a worker and run again."""
  with ray_cluster(config) as cluster:
    size = worker_count(config, cluster)
    print(f"executor: {what} on {cluster.describe()}: {size} worker(s) holding {dict(config.resources)} each",
          file=stream, flush=True)
    pool = WorkerPool(worker_class, args, size=size, config=config,
                      notice=lambda line: print(line, file=stream, flush=True))
    try:
      yield pool
    finally:
      pool.close()
      if pool.worker_losses:
        print(f"executor: {pool.worker_losses} call(s) lost with their worker were run again", file=stream,
              flush=True)


def map_unordered(call: Callable[[Any], Any], items: list, workers: int) -> Iterator[tuple[Any, Any]]:
  """(item, call(item)) as each call finishes, `workers` at a time on threads. When a call raises (Ctrl-C
  included), the calls not started yet are cancelled, the ones running still yield their results (finished
  work is never dropped), and then the first exception is raised."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="remote") as pool:
    futures = {pool.submit(call, item): item for item in items}
    failure: BaseException | None = None
    for future in concurrent.futures.as_completed(futures):
      if future.cancelled():
        continue
      error = future.exception()
      if error is None:
        yield futures[future], future.result()
      elif failure is None:
        failure = error
        for other in futures:
          other.cancel()
    if failure is not None:
      raise failure
