"""Joining (or starting) the Ray cluster of `executor.address`, before any work and for the run.

`ray_cluster(config)` connects the driver ("local" starts a private instance on this machine and stops it on
exit, "auto" joins the cluster that Ray's own lookup finds: RAY_ADDRESS, else the last `ray start` here,
HOST:PORT the cluster whose head listens there) and yields a `RayCluster` with the cluster's resources. A
missing Ray, an address where no cluster answers (probed first: Ray would retry a dead address for minutes)
or a refused token is a ConfigError of one line; `check_reachable` makes the same checks before a run
directory exists. `worker_count` sizes the pool from the cluster's resources.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import warnings
from collections.abc import Iterator

from aira_jax.config_io import ConfigError
from aira_jax.executor.config import ExecutorConfig


@dataclasses.dataclass(frozen=True)
class RayCluster:
  """The cluster the driver joined: the address asked for, whether this process started it, its resources."""

  address: str
  started_here: bool
  resources: dict[str, float]

  def describe(self) -> str:
    shown = ", ".join(f"{name} {amount:g}" for name, amount in sorted(self.resources.items())
                      if name in ("CPU", "GPU", "TPU") or not (name.startswith("node:") or "memory" in name))
    where = "a private Ray instance on this machine" if self.started_here else f"the Ray cluster at {self.address}"
    return f"{where} ({shown})"


def import_ray():
  try:
    import ray
  except ImportError:
    raise ConfigError("executor.backend=ray needs Ray: pip install 'aira_jax[ray]' (or executor.backend=local)") \
        from None
  return ray


def _resolve(ray, address: str) -> str:
  """The address to pass to `ray.init`, checked to answer: "auto" becomes the cluster that Ray's own lookup
  finds (RAY_ADDRESS, else the last `ray start` here), which must still be alive (Ray would try a dead one's
  address for minutes); ConfigError when there is none."""
  if address == "local":
    return address
  if address == "auto":
    try:
      from ray._private.services import get_ray_address_from_environment
    except ImportError:  # Ray moved its lookup: let ray.init find the cluster
      return address
    try:
      address = get_ray_address_from_environment("auto", None)
    except ConnectionError:
      raise ConfigError("executor.address=auto: no Ray cluster runs on this machine; start one with "
                        "`ray start --head` (or use executor.address=local for a private one)") from None
    if address == "auto":
      return address
    _probe(address, shown=f"auto (found {address}, the cluster last started here)")
    return address
  _probe(address, shown=address)
  return address


def _probe(address: str, *, shown: str, timeout_s: float = 5.0) -> None:
  """ConfigError unless something accepts a TCP connection at HOST:PORT (Ray would retry for a minute)."""
  host, _, port = address.removeprefix("ray://").rpartition(":")
  try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
      pass
  except OSError as e:
    reason = e.strerror or type(e).__name__
    raise ConfigError(f"executor.address={shown}: no Ray cluster answers there ({reason}); start one with "
                      "`ray start --head --port=PORT` on the head node, or use executor.address=local") from None


@contextlib.contextmanager
def ray_cluster(config: ExecutorConfig) -> Iterator[RayCluster]:
  """The driver connected to the configured cluster for the block (module docstring). A connection that
  already exists (a library user's own `ray.init`) is used as it is and left open."""
  ray = import_ray()
  if ray.is_initialized():
    yield RayCluster("existing", False, dict(ray.cluster_resources()))
    return
  address = _resolve(ray, config.address)
  options = {"log_to_driver": False, "logging_level": logging.ERROR}
  if config.address == "local":
    options["include_dashboard"] = False
  try:
    with warnings.catch_warnings():
      # Starting a private instance forks and at once execs Ray's processes (subprocess's fork_exec), which
      # JAX's at-fork hook warns about although nothing of this process runs in the child.
      warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
      ray.init(address=address, **options)
  except (ConnectionError, RuntimeError, ValueError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    if "auth" in f"{e} {e.__cause__}".lower():
      first += ("; the cluster uses token authentication: give this machine its token (~/.ray/auth_token or "
                "RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token")
    raise ConfigError(f"executor.address={config.address}: cannot join a Ray cluster: {first}") from None
  try:
    yield RayCluster(config.address, config.address == "local", dict(ray.cluster_resources()))
  finally:
    ray.shutdown()


def check_reachable(config: ExecutorConfig) -> None:
  """Before any work: for the ray backend, Ray importable and, for auto or HOST:PORT, a cluster that takes
  this driver (joined and left again); ConfigError of one line."""
  if config.backend != "ray":
    return
  import_ray()
  if config.address != "local":
    with ray_cluster(config):
      pass


def worker_count(config: ExecutorConfig, cluster: RayCluster) -> int:
  """`executor.max_concurrent`, or with 0 as many workers as the cluster's totals fit bundles of
  `executor.resources`; ConfigError when not even one fits."""
  fits = min(int(cluster.resources.get(name, 0.0) // amount) for name, amount in config.resources.items())
  if fits < 1:
    raise ConfigError(f"executor.resources={dict(config.resources)}: {cluster.describe()} has not enough for one "
                      "worker; ask for less, or add nodes with those resources")
  return config.max_concurrent or fits
