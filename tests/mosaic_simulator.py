"""A CPU simulator of the Pallas Mosaic GPU primitives the `impl="mosaic"` attention kernels use, to run their own
code (`mosaic_forward`, `mosaic_backward`, `mosaic_common`) eagerly on concrete values, since jax's GPU interpreter
cannot run them yet.

`simulated(monkeypatch)` replaces the `plgpu`, `pl` and `lax` names those modules (and `block_math`) use:
- `plgpu.kernel` runs every grid point in turn, each with one Python thread per warpgroup; global memory and shared
  memory are numpy arrays (outputs start as NaN, so an unwritten row shows), `.at[...]` gives views;
- TMA copies copy at once and arrive on their barrier; `wgmma` adds a @ b (float32 products of the 16-bit operands,
  float32 accumulation, as the tensor cores do) into its accumulator;
- barriers keep hardware mbarrier semantics: a phase completes after `num_arrivals` arrivals, and each warpgroup's
  wait is on the parity of the next phase it has not waited for. A wait that would see a phase two or more ahead (the
  parity check would alias) is an error, as is a wait that never completes (a deadlock: 20 s without progress);
- `pl.when`, `pl.loop`, `lax.fori_loop` and `lax.axis_index` run as Python control flow on concrete values.

What it does not model: register layouts, swizzling, asynchronous wgmma / TMA timing (copies land at once), shared
memory size (checked by the lowering tests). It checks the kernels' index arithmetic, masks, hooks, ring protocol and
numerics.
"""

from __future__ import annotations

import contextlib
import threading
import types

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax as real_lax
from jax.experimental import pallas as real_pl

from pallas_kernels.attention import block_math, mosaic_backward, mosaic_common, mosaic_forward

DEADLOCK_S = 20.0


class SimulationError(AssertionError):
  pass


def _index(idx):
  """A `.at[...]` index with `pl.ds` slices and traced-looking scalars as a numpy index."""
  idx = idx if isinstance(idx, tuple) else (idx,)
  out = []
  for i in idx:
    if hasattr(i, "start") and hasattr(i, "size") and not isinstance(i, slice):
      start = int(i.start)
      out.append(slice(start, start + int(i.size)))
    elif isinstance(i, slice) or i is Ellipsis:
      out.append(i)
    else:
      out.append(int(i))
  return tuple(out)


class Ref:
  """A memory ref backed by a numpy array (a view into its buffer)."""

  def __init__(self, array):
    self.array = array

  @property
  def at(self):
    return _At(lambda idx: Ref(self.array[_index(idx)]))

  @property
  def dtype(self):
    return jnp.dtype(self.array.dtype)

  @property
  def shape(self):
    return self.array.shape

  def __getitem__(self, idx):
    return jnp.asarray(self.array[_index(idx)])

  def __setitem__(self, idx, value):
    self.array[_index(idx)] = np.asarray(value, self.array.dtype)


class _At:
  def __init__(self, make):
    self._make = make

  def __getitem__(self, idx):
    return self._make(idx)


class _Program:
  """The barriers and per-warpgroup wait counts of one grid point."""

  def __init__(self):
    self.condition = threading.Condition()
    self.failed = None


class Barrier:
  """One mbarrier: completed phases, arrivals in the current phase, and each warpgroup's waits so far."""

  def __init__(self, program: _Program, num_arrivals: int, name: str):
    self.program, self.num_arrivals, self.name = program, num_arrivals, name
    self.completed = 0
    self.arrivals = 0
    self.waits = {}

  def arrive(self):
    with self.program.condition:
      self.arrivals += 1
      if self.arrivals == self.num_arrivals:
        self.arrivals = 0
        self.completed += 1
        self.program.condition.notify_all()

  def wait(self, warpgroup):
    with self.program.condition:
      expected = self.waits.get(warpgroup, 0)
      self.waits[warpgroup] = expected + 1
      if self.completed - expected >= 2:
        raise SimulationError(f"warpgroup {warpgroup} waits on phase {expected} of {self.name}, which completed "
                              f"{self.completed} phases: the parity wait would alias")
      ok = self.program.condition.wait_for(
          lambda: self.completed > expected or self.program.failed is not None, timeout=DEADLOCK_S)
      if self.program.failed is not None:
        raise SimulationError("another warpgroup failed")
      if not ok:
        raise SimulationError(f"deadlock: warpgroup {warpgroup} waited {DEADLOCK_S} s on phase {expected} of "
                              f"{self.name} ({self.completed} completed, {self.arrivals} arrivals)")


class BarrierArray:
  def __init__(self, program, num_arrivals, count, name):
    self.barriers = [Barrier(program, num_arrivals, f"{name}[{i}]") for i in range(count)]

  @property
  def at(self):
    return _At(lambda i: self.barriers[int(i)])


_local = threading.local()


def _axis_index(name):
  return jnp.int32(_local.axes[name])


def _fori_loop(lo, hi, body, carry):
  for i in range(int(lo), int(hi)):
    carry = body(jnp.int32(i), carry)
  return carry


def _when(condition):
  def run(fn):
    if bool(condition):
      fn()
    return fn
  return run


def _loop(lo, hi):
  def run(fn):
    for i in range(int(lo), int(hi)):
      fn(jnp.int32(i))
    return fn
  return run


def _run_scoped(fn, acc):
  return fn(Ref(np.zeros(acc.shape, np.float32)))


def _run_state(fn):
  def run(initial):
    ref = Ref(np.array(initial, np.float32))
    fn(ref)
    return jnp.asarray(ref.array)
  return run


def _operand(x):
  return (x.array if isinstance(x, Ref) else np.asarray(x)).astype(np.float32)


def _wgmma(acc_ref, a, b):
  acc_ref.array += _operand(a) @ _operand(b)


def _copy_to_smem(src, dst, barrier):
  dst.array[...] = src.array
  barrier.arrive()


def _copy_to_gmem(src, dst, *args, **kwargs):
  dst.array[...] = src.array


def _barrier_wait(barrier):
  barrier.wait(_local.warpgroup)


class _Acc:
  def __init__(self, shape, dtype):
    self.shape = shape

  @staticmethod
  def init(value):
    return value


class _Spec:
  def __init__(self, kind, *args, **kwargs):
    self.kind, self.args, self.kwargs = kind, args, kwargs


def _allocate(spec, program, name):
  if isinstance(spec, (tuple, list)):
    return type(spec)(_allocate(s, program, f"{name}.{i}") for i, s in enumerate(spec))
  if spec.kind == "smem":
    shape, dtype = spec.args
    return Ref(np.full(shape, np.nan, jnp.dtype(dtype)))
  if "num_barriers" not in spec.kwargs:  # one barrier, used without indexing
    return Barrier(program, spec.kwargs.get("num_arrivals", 1), name)
  return BarrierArray(program, spec.kwargs.get("num_arrivals", 1), spec.kwargs["num_barriers"], name)


def _kernel(body, *, out_type, scratch_types, grid, grid_names, num_threads, thread_name, **_):
  def call(*inputs):
    refs = [Ref(np.array(x)) for x in inputs]
    outs = [Ref(np.full(o.shape, np.nan, o.dtype)) for o in jax.tree.leaves(out_type)]
    for point in np.ndindex(*grid):
      program = _Program()
      scratch = [_allocate(s, program, f"scratch{i}") for i, s in enumerate(scratch_types)]
      errors = []

      def run(warpgroup, point=point, program=program, scratch=scratch, errors=errors):
        _local.axes = {**dict(zip(grid_names, point)), thread_name: warpgroup}
        _local.warpgroup = warpgroup
        try:
          body(*refs, *outs, *scratch)
        except Exception as e:  # noqa: BLE001 (reported by the caller)
          errors.append((warpgroup, e))
          with program.condition:
            program.failed = e
            program.condition.notify_all()

      threads = [threading.Thread(target=run, args=(w,)) for w in range(num_threads)]
      for thread in threads:
        thread.start()
      for thread in threads:
        thread.join()
      if errors:
        warpgroup, error = min(errors, key=lambda e: isinstance(e[1], SimulationError)
                               and "another warpgroup" in str(e[1]))
        raise SimulationError(f"grid point {dict(zip(grid_names, point))}, warpgroup {warpgroup}: "
                              f"{type(error).__name__}: {error}") from error
    results = [jnp.asarray(o.array) for o in outs]
    return jax.tree.unflatten(jax.tree.structure(out_type), results)
  return call


def _fake_modules():
  layout = types.SimpleNamespace(reduce=lambda *a: None)
  plgpu = types.SimpleNamespace(
      kernel=lambda body, **kw: _kernel(body, **kw),
      SMEM=lambda shape, dtype, **kw: _Spec("smem", shape, dtype),
      Barrier=lambda **kw: _Spec("barrier", **kw),
      TilingTransform=lambda *a: None, SwizzleTransform=lambda *a: None,
      CompilerParams=lambda **kw: None,
      Layout=types.SimpleNamespace(WGMMA=layout),
      layout_cast=lambda x, layout: x,
      broadcasted_iota=lambda dtype, shape, dim, layout=None: real_lax.broadcasted_iota(dtype, shape, dim),
      load=lambda ref, idx, layout=None: ref[...],
      set_max_registers=lambda n, action: None,
      copy_gmem_to_smem=_copy_to_smem,
      copy_smem_to_gmem=_copy_to_gmem,
      barrier_wait=_barrier_wait,
      barrier_arrive=lambda barrier: barrier.arrive(),
      commit_smem=lambda: None,
      wait_smem_to_gmem=lambda *a, **kw: None,
      transpose_ref=lambda ref, perm: Ref(ref.array.transpose(perm)),
      wgmma=_wgmma,
      ACC=_Acc,
  )
  pl = types.SimpleNamespace(when=_when, loop=_loop, run_scoped=_run_scoped, run_state=_run_state,
                             ds=real_pl.ds, multiple_of=lambda x, m: x)
  lax = types.SimpleNamespace(**{name: getattr(real_lax, name) for name in dir(real_lax) if not name.startswith("_")})
  lax.fori_loop, lax.axis_index = _fori_loop, _axis_index
  return plgpu, pl, lax


@contextlib.contextmanager
def simulated(monkeypatch):
  """Within the block, the Mosaic attention kernels run on this simulator."""
  plgpu, pl, lax = _fake_modules()
  for module in (mosaic_common, mosaic_forward, mosaic_backward):
    monkeypatch.setattr(module, "plgpu", plgpu)
    monkeypatch.setattr(module, "pl", pl)
    monkeypatch.setattr(module, "lax", lax)
  monkeypatch.setattr(block_math, "lax", lax)
  yield
