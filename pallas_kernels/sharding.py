"""Running kernels on sharded inputs: `jax.shard_map` with batch and heads split over mesh axes.

A `pallas_call` is opaque to the SPMD partitioner: given sharded inputs it gathers them and runs the whole
problem on every device. Inside `shard_map` each device runs the kernel on its own slice instead. Attention and
the scans are independent per (batch, head), so splitting those two axes needs no communication.

Head splitting keeps grouped heads together: query heads [i*H/T, (i+1)*H/T) use KV heads [i*KV/T, (i+1)*KV/T)
(and SSM groups likewise), so the number of KV heads / groups must be divisible by the head-axis size; a single
shared group (groups = 1) is replicated instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
from jax.sharding import PartitionSpec as P

from pallas_kernels.attention import flash_attention
from pallas_kernels.ssm import ssd

BATCH_AXES = ("data", "fsdp")
HEAD_AXIS = "tensor"


def mesh_axes(mesh, batch_axes: Sequence[str] = BATCH_AXES, head_axis: str | None = HEAD_AXIS):
  """The batch axes and head axis of `mesh` that exist and have size > 1: (tuple or None, str or None)."""
  shape = dict(mesh.shape)
  batch = tuple(a for a in batch_axes if shape.get(a, 1) > 1)
  head = head_axis if head_axis and shape.get(head_axis, 1) > 1 else None
  return (batch or None), head


def _axis_size(mesh, axes) -> int:
  if axes is None:
    return 1
  names = (axes,) if isinstance(axes, str) else axes
  size = 1
  for name in names:
    size *= dict(mesh.shape)[name]
  return size


def _check_divisible(what: str, n: int, mesh, axes):
  size = _axis_size(mesh, axes)
  if n % size:
    raise ValueError(f"{what} ({n}) is not divisible by the mesh axes {axes} (size {size}); change the mesh "
                     f"or the model so that it divides")


def sharded_flash_attention(q, k, v, *, mesh, batch_axes: Sequence[str] = BATCH_AXES,
                            head_axis: str | None = HEAD_AXIS, **kwargs):
  """`flash_attention` run per shard: batch over `batch_axes`, heads over `head_axis` (absent or size-1 axes
  are ignored). kwargs go to `flash_attention` (score_mod / mask_mod see local head indices)."""
  batch, head = mesh_axes(mesh, batch_axes, head_axis)
  _check_divisible("batch", q.shape[0], mesh, batch)
  _check_divisible("kv_heads", k.shape[2], mesh, head)
  spec = P(batch, None, head, None)
  fn = functools.partial(flash_attention, **kwargs)
  return jax.shard_map(fn, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)(q, k, v)


def sharded_ssd(x, dt, A, B, C, *, mesh, D=None, batch_axes: Sequence[str] = BATCH_AXES,
                head_axis: str | None = HEAD_AXIS, **kwargs):
  """`ssd` run per shard: batch over `batch_axes`, heads (and groups, or a replicated single group) over
  `head_axis`. kwargs go to `ssd` (initial_state, chunk_size, return_final_state, impl)."""
  batch, head = mesh_axes(mesh, batch_axes, head_axis)
  _check_divisible("batch", x.shape[0], mesh, batch)
  _check_divisible("heads", x.shape[2], mesh, head)
  groups = B.shape[2]
  if groups > 1:
    _check_divisible("groups", groups, mesh, head)
  group_axis = head if groups > 1 else None
  specs = [P(batch, None, head, None), P(batch, None, head), P(head), P(batch, None, group_axis, None),
           P(batch, None, group_axis, None)]
  args = [x, dt, A, B, C]
  if D is not None:
    specs.append(P(head))
    args.append(D)
  initial_state = kwargs.pop("initial_state", None)
  if initial_state is not None:
    specs.append(P(batch, head, None, None))
    args.append(initial_state)
  return_final_state = kwargs.get("return_final_state", False)

  def local(x, dt, A, B, C, *rest):
    rest = list(rest)
    local_d = rest.pop(0) if D is not None else None
    local_state = rest.pop(0) if initial_state is not None else None
    return ssd(x, dt, A, B, C, D=local_d, initial_state=local_state, **kwargs)

  y_spec = P(batch, None, head, None)
  out_specs = (y_spec, P(batch, head, None, None)) if return_final_state else y_spec
  return jax.shard_map(local, mesh=mesh, in_specs=tuple(specs), out_specs=out_specs, check_vma=False)(*args)


def current_mesh():
  """The mesh set by `jax.set_mesh` / `jax.sharding.use_mesh` around the current trace, or None."""
  mesh = jax.sharding.get_abstract_mesh()
  return None if mesh.empty else mesh


def run_sharded_if_meshed(sharded: Callable, plain: Callable, *args, **kwargs):
  """Calls `sharded(*args, mesh=mesh, **kwargs)` when a mesh with batch or head axes > 1 is set, else
  `plain(*args, **kwargs)`."""
  mesh = current_mesh()
  if mesh is not None and any(a is not None for a in mesh_axes(mesh)):
    return sharded(*args, mesh=mesh, **kwargs)
  return plain(*args, **kwargs)
