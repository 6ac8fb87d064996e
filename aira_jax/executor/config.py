"""The `executor` section of a run's config: local, or a Ray cluster, with the resources of one worker.

    executor:
      backend: ray            # local (default): this process, as ever | ray: actors on a Ray cluster
      address: auto           # local: a private Ray instance on this machine | auto: the running cluster |
                              # HOST:PORT: the cluster whose head (GCS) listens there
      resources: {GPU: 1}     # what one worker (one evaluation at a time) holds: CPU, GPU, TPU or custom
      max_concurrent: 0       # workers; 0: as many as the cluster has `resources` for

A worker is one Ray actor holding the pipeline's evaluator (compose: a LayoutEvaluator with its compiled
programs; design: the trusted scorer with its prepared data), so its compiles and data outlive a single
evaluation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

from aira_jax.config_io import ConfigError

_HOST_PORT = re.compile(r"^(?:ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
  """Where evaluations run (module docstring). `resources` maps a Ray resource name to the amount one worker
  holds; `max_concurrent` 0 means one worker per `resources` bundle the cluster has."""

  backend: Literal["local", "ray"] = "local"
  address: str = "local"
  resources: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1})
  max_concurrent: int = 0


def check_executor(config: ExecutorConfig, where: str = "executor") -> None:
  """The checks the types cannot make; ConfigError naming the key."""
  if config.address not in ("local", "auto") and not _HOST_PORT.match(config.address):
    raise ConfigError(f"{where}.address: must be local, auto or HOST:PORT (the Ray head's GCS address, e.g. "
                      f"10.0.0.2:6379); got {config.address!r}")
  for name, amount in config.resources.items():
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
      raise ConfigError(f"{where}.resources.{name}: must be a positive number, got {amount!r}")
  if not config.resources:
    raise ConfigError(f"{where}.resources: give what one worker holds, e.g. {{CPU: 1}} or {{GPU: 1}}")
  if config.max_concurrent < 0:
    raise ConfigError(f"{where}.max_concurrent: must be >= 0 (0: as many workers as the cluster fits), got "
                      f"{config.max_concurrent}")
