"""The Ray worker pool (aira_jax.executor.ray_pool) on a private Ray instance: results and the caller's own
exceptions come back, a worker killed mid-call costs a retry (never a result), Ctrl-C kills the busy worker;
and the pure parts (worker count, actor options, config checks, unreachable addresses) without a cluster."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from ray_testing import RAY, pickle_by_value

from aira_jax import faults
from aira_jax.config_io import ConfigError
from aira_jax.executor import ExecutorConfig, check_executor, ray_pool
from aira_jax.executor.ray_cluster import RayCluster, ray_cluster, worker_count
from aira_jax.executor.ray_pool import (
  RemoteWorker,
  WorkerLost,
  WorkerPool,
  actor_options,
  map_unordered,
)
from aira_jax.faults import InfrastructureError, Interrupted


class EchoWorker(RemoteWorker):
  """Answers calls; can sleep, fail as the candidate (ValueError) or as the evaluator (InfrastructureError)."""

  def __init__(self, tag: str):
    self.tag = tag

  def echo(self, value, sleep_s: float = 0.0):
    time.sleep(sleep_s)
    return (self.tag, value, os.getpid())

  def fail(self, kind: str):
    raise (ValueError if kind == "candidate" else InfrastructureError)(f"{kind} failure")


@pytest.fixture
def pool(ray_local):
  pickle_by_value(__name__)
  pool = WorkerPool(EchoWorker, ("t",), size=2, config=ExecutorConfig(backend="ray"))
  yield pool
  pool.close()


def _wait_until(condition, timeout_s: float = 30.0):
  deadline = time.monotonic() + timeout_s
  while not condition():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.05)


@RAY
def test_calls_return_results_and_the_callers_own_exceptions(pool):
  _wait_until(lambda: len(pool.all_workers()) == 2)  # workers join once placed
  results = dict(map_unordered(lambda v: pool.call("echo", v), list(range(6)), workers=2))
  assert {k: v[:2] for k, v in results.items()} == {v: ("t", v) for v in range(6)}
  assert len({pid for _, _, pid in results.values()}) == 2  # both workers were used
  with pytest.raises(ValueError, match="candidate failure"):
    pool.call("fail", "candidate")
  with pytest.raises(InfrastructureError, match="evaluator failure") as raised:
    pool.call("fail", "evaluator")
  assert not isinstance(raised.value, WorkerLost)
  assert pool.worker_losses == 0


@RAY
def test_a_worker_killed_mid_call_is_a_worker_loss_and_is_replaced(pool):
  _wait_until(lambda: len(pool.all_workers()) == 2)
  pids = {w["pid"] for w in pool.all_workers()}
  thread, outcome = _call_in_thread(pool, "echo", "x", 30.0)
  _wait_until(lambda: pool.busy_workers())
  (busy,) = pool.busy_workers()
  started = time.monotonic()
  os.kill(busy["pid"], signal.SIGKILL)
  thread.join(30)
  assert time.monotonic() - started < 15
  assert isinstance(outcome.get("error"), WorkerLost) and "result" not in outcome
  assert pool.worker_losses == 1
  tag, value, pid = pool.call("echo", "again")  # the survivor (or the replacement) answers
  assert (tag, value) == ("t", "again") and pid != busy["pid"]
  _wait_until(lambda: len(pool.all_workers()) == 2)  # the replacement joined
  now = {w["pid"] for w in pool.all_workers()}
  assert busy["pid"] not in now and len(now & pids) == 1


def _call_in_thread(pool, method, *args):
  """Starts `pool.call(method, *args)` on a thread: (the thread, {"result": ...} or {"error": ...})."""
  outcome = {}

  def call():
    try:
      outcome["result"] = pool.call(method, *args)
    except BaseException as e:  # noqa: BLE001  (Interrupted too)
      outcome["error"] = e

  thread = threading.Thread(target=call)
  thread.start()
  return thread, outcome


@RAY
def test_a_worker_the_cluster_cannot_place_never_takes_a_call(ray_local, monkeypatch):
  pickle_by_value(__name__)
  monkeypatch.setattr(ray_pool, "_NOTICE_AFTER_S", 0.5)
  notices = []
  pool = WorkerPool(EchoWorker, ("t",), size=1, config=ExecutorConfig(backend="ray", resources={"GPU": 1}),
                    notice=notices.append)
  try:
    thread, outcome = _call_in_thread(pool, "echo", 1)
    _wait_until(lambda: notices)
    assert "waiting" in notices[0] and "{'GPU': 1}" in notices[0] and thread.is_alive()
    faults.request_stop()
    thread.join(5)
    assert isinstance(outcome["error"], Interrupted)
  finally:
    faults._STOP.clear()
    pool.close()


@RAY
def test_ctrl_c_kills_the_busy_worker_at_once(pool):
  thread, outcome = _call_in_thread(pool, "echo", "x", 60.0)
  _wait_until(lambda: pool.busy_workers())
  (busy,) = pool.busy_workers()
  try:
    faults.request_stop()
    started = time.monotonic()
    thread.join(10)
    assert time.monotonic() - started < 2.0
  finally:
    faults._STOP.clear()
  assert isinstance(outcome.get("error"), Interrupted)
  _wait_until(lambda: not _alive(busy["pid"]), timeout_s=10)  # killed, not left training


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  with open(f"/proc/{pid}/stat") as f:
    return f.read().split()[2] != "Z"


def test_worker_count_and_actor_options():
  cluster = RayCluster("local", True, {"CPU": 4.0, "GPU": 2.0, "TPU": 8.0, "memory": 1e9})
  assert worker_count(ExecutorConfig(backend="ray"), cluster) == 4
  assert worker_count(ExecutorConfig(backend="ray", resources={"GPU": 1}), cluster) == 2
  assert worker_count(ExecutorConfig(backend="ray", resources={"TPU": 4, "CPU": 1}), cluster) == 2
  assert worker_count(ExecutorConfig(backend="ray", resources={"CPU": 1}, max_concurrent=3), cluster) == 3
  with pytest.raises(ConfigError, match="not enough for one worker"):
    worker_count(ExecutorConfig(backend="ray", resources={"GPU": 4}), cluster)
  assert actor_options({"GPU": 1}) == {"num_cpus": 0.0, "num_gpus": 1.0, "max_restarts": 0, "max_task_retries": 0,
                                       "max_concurrency": 2}
  assert actor_options({"CPU": 2, "TPU": 4})["resources"] == {"TPU": 4.0}
  assert "CPU 4, GPU 2, TPU 8" in cluster.describe() and "memory" not in cluster.describe()


@pytest.mark.parametrize("change, message", [
    ({"address": "not an address"}, "executor.address: must be local, auto or HOST:PORT"),
    ({"resources": {"GPU": 0}}, "executor.resources.GPU: must be a positive number"),
    ({"resources": {}}, "executor.resources: give what one worker holds"),
    ({"max_concurrent": -1}, "executor.max_concurrent: must be >= 0"),
])
def test_bad_executor_settings_are_one_line_errors(change, message):
  with pytest.raises(ConfigError, match=message):
    check_executor(ExecutorConfig(backend="ray", **change))
  check_executor(ExecutorConfig(backend="ray", address="10.0.0.2:6379"))  # fine


@RAY
def test_an_address_where_nothing_listens_is_a_one_line_error():
  ray = pytest.importorskip("ray")
  from ray_testing import free_port
  ray.shutdown()  # an existing connection would be used as it is
  address = f"127.0.0.1:{free_port()}"
  started = time.monotonic()
  with pytest.raises(ConfigError, match=f"executor.address={address}: no Ray cluster answers there"):
    with ray_cluster(ExecutorConfig(backend="ray", address=address)):
      pass
  assert time.monotonic() - started < 10 and not ray.is_initialized()


def test_without_ray_the_ray_backend_says_how_to_install_it(monkeypatch):
  monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
  with pytest.raises(ConfigError, match=r"pip install 'aira_jax\[ray\]'"):
    with ray_cluster(ExecutorConfig(backend="ray")):
      pass


@RAY
def test_a_private_instance_is_started_and_stopped_in_a_fresh_process():
  pytest.importorskip("ray")
  script = ("from aira_jax.executor import ExecutorConfig\n"
            "from aira_jax.executor.ray_cluster import ray_cluster, worker_count\n"
            "import ray\n"
            "config = ExecutorConfig(backend='ray', address='local')\n"
            "with ray_cluster(config) as cluster:\n"
            "  print(cluster.started_here, worker_count(config, cluster), ray.is_initialized())\n"
            "print(ray.is_initialized())\n")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["True", str(os.cpu_count()), "True", "False"]


def test_map_unordered_keeps_finished_work_when_a_call_fails():
  started = []

  def call(item):
    started.append(item)
    if item == 1:
      raise InfrastructureError("broken")
    time.sleep(0.3)
    return item * 10

  got = []
  with pytest.raises(InfrastructureError, match="broken"):
    for item, value in map_unordered(call, list(range(6)), workers=2):
      got.append((item, value))
  assert (0, 0) in got  # the call running beside the failure still delivered its result
  assert len(started) <= 3  # calls not started yet were cancelled (one may have begun as the failure ended)
