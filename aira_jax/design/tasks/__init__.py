"""Design tasks by name: "lra-listops", "lra-text", "lra-retrieval", "lra-image", "lra-pathfinder", "autoresearch".

`make_design_task(name, **options)` builds a `DesignTask`; task modules are imported lazily by name prefix
and register their factories with `register_design_task`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from aira_jax.design.tasks.base import DesignTask

_FACTORIES: dict[str, Callable[..., DesignTask]] = {}
_MODULES = {"lra": "aira_jax.design.tasks.lra", "autoresearch": "aira_jax.design.tasks.autoresearch"}


def register_design_task(name: str, factory: Callable[..., DesignTask]) -> None:
  """Registers `factory(**options) -> DesignTask` under `name`."""
  if name in _FACTORIES:
    raise ValueError(f"design task {name!r} is already registered")
  _FACTORIES[name] = factory


def _import(prefix: str) -> None:
  module = _MODULES.get(prefix)
  if module is not None:
    importlib.import_module(module)


def design_task_names() -> list[str]:
  """Every registered design task (imports all task modules)."""
  for prefix in _MODULES:
    _import(prefix)
  return sorted(_FACTORIES)


def make_design_task(name: str, **options) -> DesignTask:
  """The design task `name` built with `options`; ValueError naming the known tasks otherwise."""
  if name not in _FACTORIES:
    _import(name.split("-")[0])
  if name not in _FACTORIES:
    raise ValueError(f"unknown design task {name!r}; known: {', '.join(design_task_names())}")
  return _FACTORIES[name](**options)


__all__ = ["DesignTask", "design_task_names", "make_design_task", "register_design_task"]
