"""Tasks chosen by name: "mad/in_context_recall", "mqar", "text/bytes", "lra/listops", ...

A task module registers a factory with `register_task(name, factory)`; `make_task(name, **options)` builds it.
Modules are imported lazily by name prefix, so asking for one task does not import the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from aira_jax.tasks.base import Task

_FACTORIES: dict[str, Callable[..., Task]] = {}
# Name prefix -> the module that registers those tasks (imported on first use).
_MODULES = {"mad": "aira_jax.tasks.mad", "mqar": "aira_jax.tasks.mqar", "text": "aira_jax.tasks.text",
            "lra": "aira_jax.tasks.lra"}


def register_task(name: str, factory: Callable[..., Task]) -> None:
  """Registers `factory(**options) -> Task` under `name`; ValueError if the name is taken."""
  if name in _FACTORIES:
    raise ValueError(f"task {name!r} is already registered")
  _FACTORIES[name] = factory


def _import_all() -> None:
  for module in _MODULES.values():
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise


def task_names() -> list[str]:
  """Every registered task name (imports all task modules)."""
  _import_all()
  return sorted(_FACTORIES)


def make_task(name: str, **options) -> Task:
  """Builds the task `name` with `options`; ValueError listing the known names otherwise."""
  module = _MODULES.get(name.split("/")[0])
  if module is not None and name not in _FACTORIES:
    try:
      importlib.import_module(module)
    except ModuleNotFoundError as e:
      if e.name != module:
        raise
  if name not in _FACTORIES:
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
  return _FACTORIES[name](**options)
