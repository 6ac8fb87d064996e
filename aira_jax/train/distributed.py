"""Multi-host start-up: `jax.distributed.initialize` for pods and clusters, and CPU runs over loopback.

On TPU pods and SLURM / Kubernetes clusters JAX detects the coordinator, process count and id itself:
call `initialize()` with no arguments. Elsewhere pass them (or set AIRA_COORDINATOR, AIRA_NUM_PROCESSES,
AIRA_PROCESS_ID). On CPU the cross-process collectives use gloo (set before the backend starts), which is
how the tests train one model in two processes on 127.0.0.1. Call it first, before any other JAX work.
"""

from __future__ import annotations

import os

import jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, cpu_collectives: str = "gloo", timeout_s: int = 300) -> None:
  """Joins this process to a multi-process JAX runtime (a no-op when it is a single process).

  Arguments default to AIRA_COORDINATOR ("host:port"), AIRA_NUM_PROCESSES and AIRA_PROCESS_ID; when none is
  given anywhere, JAX's own cluster detection decides (TPU pods, SLURM, ...).
  """
  coordinator_address = coordinator_address or os.environ.get("AIRA_COORDINATOR")
  if num_processes is None and "AIRA_NUM_PROCESSES" in os.environ:
    num_processes = int(os.environ["AIRA_NUM_PROCESSES"])
  if process_id is None and "AIRA_PROCESS_ID" in os.environ:
    process_id = int(os.environ["AIRA_PROCESS_ID"])
  if num_processes == 1:
    return
  if (coordinator_address is None) != (num_processes is None) or (num_processes is None) != (process_id is None):
    raise ValueError("give all of coordinator_address, num_processes and process_id (or the AIRA_COORDINATOR, "
                     "AIRA_NUM_PROCESSES, AIRA_PROCESS_ID variables), or none of them for cluster detection")
  jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id, initialization_timeout=timeout_s)
