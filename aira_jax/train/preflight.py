"""Compile before you spend: lower and compile a step without running it, and refuse what will not fit.

`preflight(fn, *example_args)` compiles `fn` on abstract (`jax.ShapeDtypeStruct`, shardings allowed) or
concrete arguments and reads what XLA knows about the program before a single step runs: FLOPs and bytes
accessed (`cost_analysis()`), memory per device (`memory_analysis()`), and how long compilation took. With
`device_memory_bytes` it raises `PreflightError` when the program needs more memory than a device has, so a
run that cannot fit is rejected in seconds instead of failing with an out-of-memory error after the data
pipeline, checkpoint restore and first compile (the habit of MaxText's `train_compile.py`).

What the numbers mean:
- Both analyses describe the per-device program after SPMD partitioning: on a mesh of n devices each device
  runs 1/n of a data-parallel step, and `flops` is that share. `flops_ratio` scales it by the device count
  before comparing with the (global) analytic count, so work that is replicated instead of split shows up as
  a ratio above 1.
- Peak memory per device is argument + output + temp - alias bytes: the inputs that stay live, the outputs
  written, XLA's scratch buffers, less the outputs that reuse donated input buffers. Generated code size is
  left out (it is small and not reported by every backend). It is None when the backend gives no analysis.
- `cost_analysis()` is a dict on recent jax and a list of one dict per program on older ones; both are read.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

class PreflightError(RuntimeError):
  """The compiled program does not fit on the device (or could not be compiled)."""


@dataclasses.dataclass(frozen=True)
class PreflightReport:
  """What compiling one program told us. Sizes are bytes, per device; None where the backend did not say."""

  label: str
  param_count: int | None
  flops: float | None
  analytic_flops: float | None
  bytes_accessed: float | None
  argument_bytes: int | None
  output_bytes: int | None
  temp_bytes: int | None
  alias_bytes: int | None
  num_devices: int
  lower_seconds: float
  compile_seconds: float

  @property
  def peak_memory_bytes(self) -> int | None:
    """argument + output + temp - alias bytes per device (see the module docstring), or None if unknown."""
    parts = (self.argument_bytes, self.output_bytes, self.temp_bytes)
    if any(p is None for p in parts):
      return None
    return sum(parts) - (self.alias_bytes or 0)

  @property
  def flops_ratio(self) -> float | None:
    """XLA's FLOPs (all devices: per-device count x num_devices) / the analytic count, when both are known."""
    if self.flops is None or not self.analytic_flops:
      return None
    return self.flops * self.num_devices / self.analytic_flops

  def fits(self, device_memory_bytes: int | None) -> bool:
    """Whether the peak memory fits in `device_memory_bytes`. Unknown on either side counts as fitting: a
    backend that reports nothing (or a device with no limit) cannot be used to refuse a run."""
    peak = self.peak_memory_bytes
    return peak is None or device_memory_bytes is None or peak <= device_memory_bytes


def format_bytes(num_bytes: float) -> str:
  """Bytes in the largest binary unit that keeps the number at least 1: "12.3 GiB", "512.0 KiB", "96 B"."""
  for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
    if abs(num_bytes) >= 1 << shift:
      return f"{num_bytes / (1 << shift):.1f} {unit}"
  return f"{int(num_bytes)} B"


def check_fits(report: PreflightReport, device_memory_bytes: int | None) -> None:
  """Raises PreflightError "does not fit: needs X of Y per device ...", naming what to change, when `report`
  does not fit a device."""
  if report.fits(device_memory_bytes):
    return
  what = f"{report.label}: " if report.label else ""
  needs, has = format_bytes(report.peak_memory_bytes), format_bytes(device_memory_bytes)
  raise PreflightError(f"{what}does not fit: needs {needs} of {has} per device; "
                       "reduce batch_size, seq_len or model size, or shard over more devices")


def device_memory_bytes(device: jax.Device | None = None) -> int | None:
  """The memory limit of `device` (default: the first device) from `memory_stats()["bytes_limit"]`, or None
  where the backend keeps no statistics (CPU)."""
  device = device if device is not None else jax.devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # Some backends raise instead of returning None.  # pylint: disable=broad-except
    return None
  if not stats or "bytes_limit" not in stats:
    return None
  return int(stats["bytes_limit"])


def count_leaves(params: Any) -> int:
  """Number of scalars in a pytree of arrays or ShapeDtypeStructs (an `nnx.State` included)."""
  return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params) if hasattr(leaf, "shape")))


def _cost(compiled) -> Mapping[str, float]:
  """cost_analysis() as one dict; empty when the backend gives none."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # Not implemented on every backend.  # pylint: disable=broad-except
    return {}
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  return dict(analysis or {})


def _memory(compiled) -> dict[str, int | None]:
  """memory_analysis() sizes, each None when the backend gives no analysis."""
  try:
    analysis = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    analysis = None
  fields = ("argument", "output", "temp", "alias")
  if analysis is None:
    return {f"{f}_bytes": None for f in fields}
  return {f"{f}_bytes": _int_or_none(getattr(analysis, f"{f}_size_in_bytes", None)) for f in fields}


def _int_or_none(value) -> int | None:
  return None if value is None else int(value)


def _optional_float(cost: Mapping[str, float], key: str) -> float | None:
  value = cost.get(key)
  return None if value is None or value < 0 else float(value)


def _num_devices(compiled) -> int:
  """Devices the program runs on, from its input and output shardings (1 when it has none)."""
  shardings = []
  for attr in ("input_shardings", "output_shardings"):
    try:
      shardings.extend(jax.tree.leaves(getattr(compiled, attr)))
    except Exception:  # pylint: disable=broad-except
      pass
  sizes = [len(s.device_set) for s in shardings if hasattr(s, "device_set")]
  return max(sizes, default=1)


def preflight(fn: Callable, *example_args, params: Any = None, device_memory_bytes: int | None = None,
              analytic_flops: float | None = None, label: str = "") -> PreflightReport:
  """Lowers and compiles `fn(*example_args)` without running it and reports its cost.

  Args:
    fn: a `jax.jit`-ed function (its shardings, static arguments and donation are kept), or a plain one,
      which is wrapped in `jax.jit`.
    *example_args: the arguments, concrete arrays or `jax.ShapeDtypeStruct`s (with shardings, for a mesh).
    params: a parameter pytree (arrays or ShapeDtypeStructs) whose scalars are counted for the report.
    device_memory_bytes: when given, raise `PreflightError` if the program needs more memory per device.
    analytic_flops: the analytic FLOPs of one call (global, e.g. `flops_per_token(..., training=True) *
      tokens`), reported next to XLA's count with their ratio.
    label: a name for the report (the candidate being checked).

  Raises:
    PreflightError: if lowering or compiling fails, or the program does not fit `device_memory_bytes`.
  """
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  start = time.perf_counter()
  try:
    lowered = jitted.lower(*example_args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
  except Exception as error:
    what = f"{label}: " if label else ""
    raise PreflightError(f"{what}compilation failed: {type(error).__name__}: {error}") from error
  report = report_compiled(compiled, label=label, params=params, analytic_flops=analytic_flops,
                           lower_seconds=lowered_at - start, compile_seconds=time.perf_counter() - lowered_at)
  if device_memory_bytes is not None:
    check_fits(report, device_memory_bytes)
  return report


def report_compiled(compiled, *, label: str = "", params: Any = None, analytic_flops: float | None = None,
                    lower_seconds: float = 0.0, compile_seconds: float = 0.0) -> PreflightReport:
  """The `PreflightReport` of an already compiled program (`jax.stages.Compiled`); arguments as `preflight`,
  with the lowering and compile times measured by the caller."""
  cost = _cost(compiled)
  return PreflightReport(
      label=label,
      param_count=None if params is None else count_leaves(params),
      flops=_optional_float(cost, "flops"),
      analytic_flops=None if analytic_flops is None else float(analytic_flops),
      bytes_accessed=_optional_float(cost, "bytes accessed"),
      num_devices=_num_devices(compiled),
      lower_seconds=lower_seconds,
      compile_seconds=compile_seconds,
      **_memory(compiled),
  )


def _si(value: float) -> str:
  """1.23e12 -> "1.23 T"."""
  for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
    if abs(value) >= scale:
      return f"{value / scale:.3g} {suffix}"
  return f"{value:.3g} "


def format_report(report: PreflightReport, device_memory_bytes: int | None = None) -> str:
  """A short two-column table: parameters, FLOPs/step (and the analytic ratio), memory/device, compile time."""
  unknown = "unknown"
  rows = [("parameters", unknown if report.param_count is None else f"{report.param_count:,}")]
  if report.flops is None:
    rows.append(("FLOPs/step/device", unknown))
  else:
    rows.append(("FLOPs/step/device", f"{_si(report.flops)}FLOP"))
    if report.flops_ratio is not None:
      rows.append(("XLA / analytic FLOPs", f"{report.flops_ratio:.3f} (analytic {_si(report.analytic_flops)}FLOP)"))
  if report.bytes_accessed is not None:
    rows.append(("bytes accessed/device", f"{_si(report.bytes_accessed)}B"))
  peak = report.peak_memory_bytes
  memory = unknown if peak is None else format_bytes(peak)
  if peak is not None and device_memory_bytes is not None:
    memory += f" of {format_bytes(device_memory_bytes)} ({100 * peak / device_memory_bytes:.0f}%)"
  rows.append(("memory/device", memory))
  if peak is not None:
    parts = (report.argument_bytes, report.output_bytes, report.temp_bytes, report.alias_bytes)
    rows.append(("  args/out/temp/alias", " / ".join(format_bytes(b or 0) for b in parts)))
  rows.append(("devices", str(report.num_devices)))
  rows.append(("compile time", f"{report.lower_seconds + report.compile_seconds:.2f} s "
                               f"(lower {report.lower_seconds:.2f} s)"))
  width = max(len(name) for name, _ in rows)
  title = [f"preflight {report.label}".rstrip()]
  return "\n".join(title + [f"  {name:<{width}}  {value}" for name, value in rows])
