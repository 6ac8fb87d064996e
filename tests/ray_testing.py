"""Ray for the tests: one private instance per test process, and a cluster of nodes on loopback.

Tests that use Ray take the `ray_local` or `loopback_cluster` fixture (tests/conftest.py); `RAY` marks them (the
marker `ray`). pytest-xdist may run them in both test processes at once: each process has its own private
instance (a different port and session), a loopback cluster has its own port, and the authentication token
they all read is made once, atomically, when this module is imported. The pipelines reuse a connection that
exists (aira_jax.executor.ray_cluster.ray_cluster), so a test's `executor.backend=ray` run goes to the cluster its
fixture connected; a test that needs a particular cluster connects to it at its start.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

RAY = pytest.mark.ray

# Ray reads its authentication mode when it is imported: token mode for every cluster the tests start or join
# (a private instance uses it anyway; the loopback nodes and this driver must agree).
os.environ.setdefault("RAY_AUTH_MODE", "token")


def _ensure_token() -> None:
  """~/.ray/auth_token, made once: a fresh machine's first two Ray starts in two test processes would otherwise
  each write their own and a cluster would refuse the other's clients."""
  path = pathlib.Path(os.environ.get("RAY_AUTH_TOKEN_PATH", pathlib.Path.home() / ".ray" / "auth_token"))
  if path.exists():
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, temporary = tempfile.mkstemp(dir=path.parent)
  with os.fdopen(fd, "w") as f:
    f.write(secrets.token_hex(32))
  try:
    os.link(temporary, path)  # atomic, and refuses to replace a token another process made first
  except FileExistsError:
    pass
  finally:
    os.unlink(temporary)


_ensure_token()

# The evaluator of the compose tests on Ray: one MAD task, 3 steps, a width-16 model (seconds per layout).
COMPOSE_TINY = {"task": "mad-lite", "mad_tasks": ("in_context_recall",), "steps": 3, "batch_size": 4,
                "eval_examples": 16, "model": {"d_model": 16, "num_heads": 2, "ffn_dim": 32, "ssm_head_dim": 8}}
# The design runs on Ray: the built-in agent, two candidates, a tiny LRA ListOps, bwrap required.
DESIGN_TINY = ["--quiet", "search.agents=[greedy]", "search.steps_per_agent=2",
               "search.task_options={num_train: 200, num_validation: 64, num_test: 64, seq_len: 32, max_depth: 3, "
               "steps: 10, batch_size: 16, d_model: 16, num_heads: 2, num_layers: 1}", "sandbox.isolation=bwrap"]

# Fast node-death detection for the loopback cluster (Ray's defaults take tens of seconds).
HEALTH_CHECK_ENV = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                    "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_timeout_ms": "500"}

_connected = {"to": None}


def import_ray():
  return pytest.importorskip("ray")


def connect_private(num_cpus: int = 4) -> None:
  """This process connected to its own private Ray instance (started on first use, about 3 s). It advertises 4
  logical CPUs on the 2 cores, so a module's long-lived pool and a test's own run fit side by side (Ray pins no
  cores; an actor Ray cannot place would make a run wait for resources)."""
  ray = import_ray()
  if _connected["to"] == "private" and ray.is_initialized():
    return
  if ray.is_initialized():
    ray.shutdown()
  ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
  _connected["to"] = "private"


def pickle_by_value(module_name: str) -> None:
  """Ray workers cannot import test modules: send `module_name`'s classes and functions by value."""
  ray = import_ray()
  ray.cloudpickle.register_pickle_by_value(sys.modules[module_name])


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class LoopbackCluster:
  """A head node and worker nodes, each a `ray start --block` process group on 127.0.0.1 with its own CPUs and
  a custom resource naming it; `kill(name)` SIGKILLs a node's whole process group (node loss)."""

  def __init__(self):
    self.port = free_port()
    self.address = f"127.0.0.1:{self.port}"
    self.nodes: dict[str, subprocess.Popen] = {}
    self.env = {**os.environ, **HEALTH_CHECK_ENV, "RAY_AUTH_MODE": "token"}

  def _start(self, name: str, args: list[str], num_cpus: int) -> None:
    argv = ["ray", "start", *args, f"--num-cpus={num_cpus}", f'--resources={{"{name}": 1}}',
            "--node-ip-address=127.0.0.1", "--block"]
    self.nodes[name] = subprocess.Popen(argv, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

  def start_head(self, name: str = "node_head", num_cpus: int = 1) -> None:
    self._start(name, ["--head", f"--port={self.port}", "--include-dashboard=false"], num_cpus)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
      try:
        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        return
      except OSError:
        if self.nodes[name].poll() is not None:
          raise RuntimeError(f"ray start --head exited with {self.nodes[name].returncode}")
        time.sleep(0.2)
    raise RuntimeError("the head node did not come up in 60 s")

  def add_node(self, name: str, num_cpus: int = 1) -> None:
    self._start(name, [f"--address={self.address}"], num_cpus)

  def connect(self) -> None:
    """This process connected to the cluster (again, if another test connected it elsewhere), once every node
    has joined."""
    ray = import_ray()
    if _connected["to"] == self.address and ray.is_initialized():
      return
    if ray.is_initialized():
      ray.shutdown()
    ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
    _connected["to"] = self.address
    self.wait_for_nodes()

  def wait_for_nodes(self, timeout_s: float = 60) -> None:
    ray = import_ray()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      resources = ray.cluster_resources()
      if all(resources.get(name, 0) >= 1 for name in self.nodes if self.nodes[name].poll() is None):
        return
      time.sleep(0.2)
    raise RuntimeError(f"nodes did not join: {ray.cluster_resources()}")

  def node_id(self, name: str) -> str:
    """The Ray node id of the node holding the resource `name`."""
    ray = import_ray()
    for node in ray.nodes():
      if node["Alive"] and name in node["Resources"]:
        return node["NodeID"]
    raise KeyError(name)

  def kill(self, name: str) -> None:
    os.killpg(self.nodes[name].pid, signal.SIGKILL)
    self.nodes[name].wait(30)

  def stop(self) -> None:
    ray = import_ray()
    if _connected["to"] == self.address:
      ray.shutdown()
      _connected["to"] = None
    for name, process in self.nodes.items():
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
