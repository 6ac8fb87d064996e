"""The fixed evaluator of compose: trains one layout small on the proxy task and returns its fitness.

Fitness: on "mad-lite", the MAD score (mean validation accuracy over `EvaluatorConfig.mad_tasks`, each task
trained separately from fresh parameters); on a single task, that task's metric (accuracy for MAD and MQAR,
val_bpb for text, lower is better) on the first `eval_examples` validation rows. The test split is left for
reports. Every candidate gets fresh parameters and optimizer state from its seed; the seed also orders the
training batches, so repeating a layout with other seeds measures the noise floor.

Modes (see programs.py): "switch" compiles one program per task (and device) for every layout of the search's
depth and space; "dedicated" compiles one per layout. "auto" picks switch on every backend: compiling a
program per layout costs more than training the small proxy models (`experiments/bench/search_throughput.py`
measures both; RESULTS.md). Both modes train a layout with the project's one loop (aira_jax.train.trainer)
from the same initial parameters, so they give the same metric up to floating-point order.

Parallelism: evaluations from several threads each take a device from a pool, so `workers` evaluations run at
once on different devices.

Whose fault (aira_jax.faults): a layout that is not valid here (wrong depth, symbol outside the space) raises
ValueError; a run whose loss becomes non-finite is a buggy result "diverged"; a program compiled for the
layout alone (dedicated mode) that the preflight finds too big for the device is a buggy result "does not
fit: needs X of Y per device", and one that runs out of memory anyway "out of memory" (in switch mode both are
the evaluator's: the program is the same for every layout). Any other
exception while training is the evaluator's, not the layout's: `InfrastructureError`, never passed to
`on_evaluation` (the store). Ctrl-C stops a training run between steps (`Interrupted`).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from aira_jax.agents.evaluation import EvalResult
from aira_jax.compose.config import ConfigError, EvaluatorConfig
from aira_jax.compose.programs import LayoutProgram
from aira_jax.faults import InfrastructureError, Interrupted
from aira_jax.layout import Layout
from aira_jax.models.presets import preset_config
from aira_jax.tasks import make_task
from aira_jax.tasks.base import Task
from aira_jax.tasks.mad import mad_lite_tasks
from aira_jax.train.mesh import MeshConfig, make_mesh


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One evaluation: the layout's fitness with its per-task scores, or why it failed, and its timings."""

  layout: str
  seed: int
  metric: float | None
  per_task: dict[str, float]
  is_buggy: bool = False
  error: str | None = None
  seconds: float = 0.0
  compile_seconds: float = 0.0
  device: str = ""

  def summary(self) -> str:
    """One line for the journal's output excerpt (what an agent sees)."""
    if self.is_buggy:
      return f"{self.layout}: failed: {self.error}"
    scores = ", ".join(f"{name} {value:.4f}" for name, value in self.per_task.items())
    return (f"{self.layout}: fitness {self.metric:.4f} ({scores}); {self.seconds:.1f} s "
            f"({self.compile_seconds:.1f} s compiling)")


def proxy_tasks(config: EvaluatorConfig) -> dict[str, Task]:
  """The tasks a layout is trained on, by short name; ConfigError for unknown or classifier tasks."""
  if config.task == "mad-lite":
    lite = mad_lite_tasks(seed=config.seed)
    unknown = [t for t in config.mad_tasks if t not in lite]
    if unknown or not config.mad_tasks:
      raise ConfigError(f"evaluator.mad_tasks: unknown {unknown or '(empty)'}; choose from {', '.join(lite)}")
    return {name: lite[name] for name in config.mad_tasks}
  try:
    task = make_task(config.task, **{"seed": config.seed, **dict(config.task_options)})
  except (ValueError, TypeError) as e:
    raise ConfigError(f"evaluator.task {config.task!r}: {e}") from None
  if task.spec.head != "lm":
    raise ConfigError(f"evaluator.task {config.task!r} is a classification task; compose trains language "
                      "models: choose mad-lite, a mad/... task, mqar or text/...")
  return {config.task: task}


class _DoesNotFit(Exception):
  """The preflight refused a program: it needs more memory than the device has."""


def _thread_device() -> jax.Device:
  """The device this thread's `jax.default_device` names (`evaluate` sets it), else the first local one."""
  device = jax.config.jax_default_device
  return device if isinstance(device, jax.Device) else jax.local_devices()[0]


class LayoutEvaluator:
  """Scores layouts of `depth` layers in `space` on the configured proxy task (module docstring).

  Args:
    config: the evaluator section of the compose config.
    space, depth: the search space.
    devices: where evaluations run (default: the local devices).
    on_evaluation: called with every finished `Evaluation` (the store records them).
  """

  def __init__(self, config: EvaluatorConfig, *, space: str, depth: int,
               devices: Sequence[jax.Device] | None = None,
               on_evaluation: Callable[[Evaluation], None] | None = None):
    self.config, self.space, self.depth = config, space, depth
    self.mode = "switch" if config.mode == "auto" else config.mode
    self.tasks = proxy_tasks(config)
    specs = [task.spec for task in self.tasks.values()]
    self.metric_name = "mad_score" if config.task == "mad-lite" else specs[0].metric
    self.lower_is_better = specs[0].lower_is_better
    try:
      self.base_config = preset_config(config.preset, **dict(config.model))
    except ValueError as e:
      raise ConfigError(f"evaluator.model: {e}") from None
    self.on_evaluation = on_evaluation
    self._device_list = list(devices) if devices else None
    self._devices: queue.LifoQueue | None = None  # built on first use: a driver on Ray never touches devices
    self.done = 0  # evaluations finished
    self.running = 0  # evaluations in progress
    self._programs: dict[tuple, LayoutProgram] = {}
    self._lock = threading.Lock()

  @property
  def devices(self) -> list[jax.Device]:
    """Where evaluations run (default: the local devices)."""
    if self._device_list is None:
      self._device_list = list(jax.local_devices())
    return self._device_list

  def _device_pool(self) -> queue.LifoQueue:
    # Last in, first out: a worker gets back the device it just used, whose programs are already compiled
    # (a FIFO pool would rotate through every device and compile each program again on each one).
    with self._lock:
      if self._devices is None:
        self._devices = queue.LifoQueue()
        for device in reversed(self.devices):  # the first device is handed out first
          self._devices.put(device)
      return self._devices

  def where(self) -> str:
    """Where evaluations run, for the report."""
    return "this process"

  def default_workers(self) -> int:
    """One evaluation per device on accelerators; one on CPU, where the "devices" share the same cores."""
    return 1 if self.devices[0].platform == "cpu" else len(self.devices)

  def parse(self, text: str) -> Layout:
    """The layout in `text`, checked against the space and depth; ValueError saying what is wrong."""
    layout = Layout.parse(text, space=self.space)
    if layout.depth != self.depth:
      raise ValueError(f"layout {layout.run_length()} has {layout.depth} layers; exactly {self.depth} are required")
    return layout

  def program(self, task_name: str, layout: Layout) -> LayoutProgram:
    """The program for `task_name` on this thread's device (shared by all layouts in switch mode); built on
    first use."""
    device = _thread_device()
    key = (task_name, None if self.mode == "switch" else layout.text, device)
    with self._lock:
      program = self._programs.get(key)
      if program is None:
        task = self.tasks[task_name]
        config = self.base_config.replace(vocab_size=task.spec.vocab_size,
                                          max_seq_len=max(task.spec.seq_len, self.base_config.max_seq_len))
        program = LayoutProgram(task, config, depth=self.depth, space=self.space,
                                layout=None if self.mode == "switch" else layout,
                                optimizer=self.config.optimizer,
                                mesh=make_mesh(MeshConfig(), devices=[device]))
        self._programs[key] = program
    return program

  def _train_one(self, task_name: str, layout: Layout, seed: int) -> tuple[float | None, str | None, float]:
    """(score, error, compile seconds) of one task."""
    program = self.program(task_name, layout)
    compiled_before = program.compile_seconds
    result = program.train(layout, seed, steps=self.config.steps, batch_size=self.config.batch_size)
    if result.status == "interrupted":
      raise Interrupted(result.stop_reason)
    if result.status == "does not fit":
      raise _DoesNotFit(result.stop_reason)
    if result.status != "completed":
      return None, f"{result.status}: {result.stop_reason}", program.compile_seconds - compiled_before
    validation = self.tasks[task_name].splits()["validation"]
    rows = min(self.config.eval_examples, len(validation))
    scores = program.score(result.params, layout, validation.inputs[:rows], validation.targets[:rows],
                           self.config.batch_size)
    metric = self.tasks[task_name].spec.metric
    value = scores.get(metric)
    if value is None or not math.isfinite(value):
      return None, f"diverged: validation {metric} {value}", program.compile_seconds - compiled_before
    return value, None, program.compile_seconds - compiled_before

  def evaluate(self, text: str, seed: int | None = None) -> Evaluation:
    """Trains and scores the layout in `text` with `seed` (default: the config's); ValueError if invalid,
    InfrastructureError when the evaluator itself fails (module docstring)."""
    layout = self.parse(text)
    seed = self.config.seed if seed is None else seed
    with self._lock:
      self.running += 1
    try:
      evaluation = self._run(layout, seed)
    finally:
      with self._lock:
        self.running -= 1
        self.done += 1
    if self.on_evaluation is not None:
      self.on_evaluation(evaluation)
    return evaluation

  def _run(self, layout: Layout, seed: int) -> Evaluation:
    """Trains `layout` with `seed` on a device of this process (aira_jax.compose.remote runs it on a Ray
    worker instead)."""
    devices = self._device_pool()
    device = devices.get()
    started = time.perf_counter()
    try:
      with jax.default_device(device):
        per_task, compile_seconds, error = self._train_tasks(layout, seed)
    except Exception as e:  # noqa: BLE001  (whose fault: `_blame` says, or raises InfrastructureError)
      per_task, compile_seconds, error = {}, 0.0, self._blame(layout, e)
    finally:
      devices.put(device)
    metric = None if error else float(np.mean(list(per_task.values())))
    return Evaluation(layout=layout.text, seed=seed, metric=metric, per_task=per_task, is_buggy=error is not None,
                      error=error, seconds=time.perf_counter() - started, compile_seconds=compile_seconds,
                      device=str(device))

  def _train_tasks(self, layout: Layout, seed: int) -> tuple[dict[str, float], float, str | None]:
    """(score per task, compile seconds, the first task's error or None), stopping at the first failed task."""
    per_task, compile_seconds = {}, 0.0
    for name in self.tasks:
      value, error, compiled = self._train_one(name, layout, seed)
      compile_seconds += compiled
      if error is not None:
        return per_task, compile_seconds, f"{name}: {error}"
      per_task[name] = value
    return per_task, compile_seconds, None

  def _blame(self, layout: Layout, error: Exception) -> str:
    """The layout's failure message for `error`, raised while training it, or InfrastructureError when it is
    not the layout's fault. Only running out of memory in a program compiled for this layout alone is; the
    switch program is the same for every layout of the space."""
    if isinstance(error, InfrastructureError):
      raise error
    if isinstance(error, _DoesNotFit):
      if self.mode == "dedicated":
        return str(error)
      raise InfrastructureError(f"the switch program of every layout {error}: reduce evaluator.batch_size or the "
                                "model, or use evaluator.mode=dedicated") from error
    if self.mode == "dedicated" and "RESOURCE_EXHAUSTED" in str(error):
      return f"out of memory: {str(error).strip().splitlines()[0][:300]}"
    raise InfrastructureError(f"the evaluator failed on {layout.text}: {type(error).__name__}: {error}") from error

  def __call__(self, payload: str) -> EvalResult:
    """The `EvaluationQueue` interface: payload = layout text."""
    evaluation = self.evaluate(payload)
    return EvalResult(metric=evaluation.metric, is_buggy=evaluation.is_buggy, error=evaluation.error,
                      output=evaluation.summary(), seconds=evaluation.seconds)

  def key(self, payload: str) -> str:
    """The de-duplication key: the canonical layout text (so "2A+2M" and "AAMM" are one layout)."""
    return self.parse(payload).text
