"""Training checkpoints: parameters, optimizer state, data-iterator position and step, in one orbax step.

`Checkpointer` wraps `orbax.checkpoint.CheckpointManager` with three items per step directory:
"params" and "opt_state" (array pytrees, `StandardSave` / `StandardRestore`, so a restore lands directly in
the shardings of the abstract arrays it is given - any mesh, any process count), and "data" (the loader's
`get_state()` dict, `JsonSave` / `JsonRestore`). The step is the manager's step number.

`nnx.State` anywhere in the trees (the parameters, or inside an optax state built over them) is saved as its
pure dict (`nnx.to_pure_dict`) and rebuilt in the abstract tree's structure on restore, so checkpoints do not
depend on flax's Variable classes. Saves are asynchronous by default: `save` returns once the arrays are
copied off the device; `wait()` blocks until the files are committed. The manager keeps the newest
`max_to_keep` steps.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

_ITEMS = ("params", "opt_state", "data")


def _is_state(x: Any) -> bool:
  return isinstance(x, nnx.State)


def _to_pure(tree: Any) -> Any:
  """Replaces every nnx.State in `tree` by its pure dict of raw values."""
  return jax.tree.map(lambda x: nnx.to_pure_dict(x) if _is_state(x) else x, tree, is_leaf=_is_state)


def _from_pure(abstract: Any, restored: Any) -> Any:
  """Restored pure values put back into `abstract`'s structure (nnx.State where it has one)."""

  def rebuild(abstract_leaf, restored_leaf):
    if _is_state(abstract_leaf):
      state = jax.tree.map(lambda x: x, abstract_leaf)  # a fresh copy; the caller's stays abstract
      nnx.replace_by_pure_dict(state, restored_leaf)
      return state
    return restored_leaf

  return jax.tree.map(rebuild, abstract, restored, is_leaf=_is_state)


def abstract_like(tree: Any) -> Any:
  """`jax.ShapeDtypeStruct`s (with each array's sharding) for every array leaf of `tree`: the abstract
  target `Checkpointer.restore` needs, e.g. from a freshly initialised model placed on the mesh, or from
  `jax.eval_shape` output that has shardings attached."""

  def to_abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      return x
    if isinstance(x, jax.Array):
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x

  return jax.tree.map(to_abstract, tree)


class Checkpointer:
  """Saves and restores (params, opt_state, data_state) by step under `directory`.

  Args:
    directory: where step directories live (created if missing; must be on storage every process sees).
    max_to_keep: newest steps kept; older ones are deleted after a newer save commits (None keeps all).
    save_interval_steps: `save` at a step that is not a multiple of this is skipped (returns False) unless
      forced.
    async_save: write files in a background thread (call `wait()` before reading them).
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3, save_interval_steps: int = 1,
               async_save: bool = True):
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
                                           enable_async_checkpointing=async_save, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS)

  def save(self, step: int, params: Any, opt_state: Any, data_state: dict | None = None, *,
           force: bool = False) -> bool:
    """Starts saving `step`; returns whether a save was started (False when the interval skips this step).

    params, opt_state: pytrees of jax.Arrays (nnx.State allowed); data_state: a JSON-serializable dict such
    as `Loader.get_state()`, or None.
    """
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(_to_pure(params)),
        opt_state=ocp.args.StandardSave(_to_pure(opt_state)),
        data=ocp.args.JsonSave({"state": data_state}),
    )
    return bool(self._manager.save(int(step), args=args, force=force))

  def restore(self, step: int | None = None, *, abstract_params: Any, abstract_opt_state: Any
              ) -> tuple[Any, Any, dict | None, int]:
    """(params, opt_state, data_state, step) of `step` (default: the latest).

    abstract_params / abstract_opt_state give the structure, shapes, dtypes and target shardings (trees of
    `jax.ShapeDtypeStruct` with `sharding`, see `abstract_like`; nnx.State allowed). FileNotFoundError when
    there is no checkpoint, ValueError when `step` is not one of the saved steps.
    """
    self.wait()
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint to restore in {self.directory} (the directory has no saved steps)")
    if step is None:
      step = max(steps)
    elif int(step) not in steps:
      raise ValueError(f"no checkpoint for step {step} in {self.directory}; saved steps: {sorted(steps)}")
    step = int(step)
    args = ocp.args.Composite(
        params=ocp.args.StandardRestore(_to_pure(abstract_like(abstract_params))),
        opt_state=ocp.args.StandardRestore(_to_pure(abstract_like(abstract_opt_state))),
        data=ocp.args.JsonRestore(),
    )
    restored = self._manager.restore(step, args=args)
    params = _from_pure(abstract_params, restored["params"])
    opt_state = _from_pure(abstract_opt_state, restored["opt_state"])
    data = restored["data"]
    return params, opt_state, (data or {}).get("state"), step

  def latest_step(self) -> int | None:
    """The newest saved step (including one still being written), or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Saved steps, ascending."""
    return sorted(self._manager.all_steps())

  def wait(self) -> None:
    """Blocks until every started save is committed to disk (and old steps are pruned)."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager's resources."""
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
