"""The fixed harness of the autoresearch design task, run in the candidate's sandbox in two phases.

`python -m aira_jax.design.tasks.autoresearch_harness settings.json train` (train.py beside settings.json):
- import: load train.py (syntax errors and import-time exceptions fail here).
- interface: `train(data, budget_seconds)` and `predict(state, tokens)` exist and are callable.
- train: `state = train(data, budget_seconds)`, timed, then saved with pickle (JAX arrays as numpy) to
  `state.pkl` in the working directory. `data` holds the training rows only (read from the trusted scorer's
  data directory); no validation text exists in this process. The clock starts when train.py calls
  `data.start_clock()` (after its first, compiling step) or, if it never does, at the call. Fails when the
  candidate raises, spends more than `compile_allowance_s` before starting the clock, trains for more than
  `budget_seconds + overrun_s` after it, or returns a state that cannot be pickled.
`python -m aira_jax.design.tasks.autoresearch_harness settings.json predict QUERIES_DIR` (a fresh process in
a fresh directory; the trusted side runs two):
- import: train.py again.
- predict: load `QUERIES_DIR/state.pkl` (the parent's copy of the train phase's state), then for each batch
  of `QUERIES_DIR/queries.npy` (rows chosen by the trusted side) send `predict(state, batch)` on the results
  channel.
Everything here is a report: the trusted scorer (`autoresearch_scoring`) checks shapes, finiteness and
causality and computes val_bpb from the logits in the parent; the budget is enforced there by killing the
train phase (this process's clock checks only give readable errors to honest candidates).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import pickle
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aira_jax.design.channel import send_array
from aira_jax.design.records import record_end, record_start
from aira_jax.tasks.base import IGNORE

DEFAULT_SETTINGS: dict[str, Any] = {"filename": "train.py", "budget_seconds": 60.0, "compile_allowance_s": 120.0,
                                    "overrun_s": 5.0, "eval_batch": 16}
STATE_FILE = "state.pkl"
_TRACEBACK_CHARS = 3000


class StageFailure(Exception):
  """A candidate failed a stage for a reason the harness states itself (no traceback needed)."""


class TrainData:
  """What `train(data, budget_seconds)` receives: the training rows, vocabulary facts and the clock."""

  ignore_id = IGNORE

  def __init__(self, inputs: np.ndarray, targets: np.ndarray, vocab_size: int, seq_len: int, bos_id: int,
               token_bytes: np.ndarray, budget_seconds: float):
    self.train_tokens = _read_only(inputs)
    self.train_targets = _read_only(targets)
    self.token_bytes = _read_only(token_bytes)
    self.vocab_size = int(vocab_size)
    self.seq_len = int(seq_len)
    self.bos_id = int(bos_id)
    self.budget_seconds = float(budget_seconds)
    self.reported: dict[str, float] = {}
    self._called = time.perf_counter()
    self._clock: float | None = None

  def start_clock(self) -> None:
    """Starts the budget clock; call once, right after the first (compiling) step. Later calls do nothing."""
    if self._clock is None:
      self._clock = time.perf_counter()

  def elapsed(self) -> float:
    """Seconds since start_clock (since train was called, before start_clock)."""
    return time.perf_counter() - (self._called if self._clock is None else self._clock)

  def remaining(self) -> float:
    """budget_seconds - elapsed() (negative once over)."""
    return self.budget_seconds - self.elapsed()

  def report(self, *, steps: int | None = None, tokens: int | None = None,
             train_loss: float | None = None) -> None:
    """Optional training facts, shown with the score as steps, tokens_seen and train_loss."""
    for name, value in (("steps", steps), ("tokens_seen", tokens), ("train_loss", train_loss)):
      if value is not None:
        self.reported[name] = float(value)


def _read_only(array: np.ndarray) -> np.ndarray:
  array = np.array(array, copy=True)
  array.flags.writeable = False
  return array


def _stage(name: str, results: dict[str, Any], fn: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[bool, Any]:
  """Runs one stage: records start and end, stores its outcome in `results`; (ok, value)."""
  started = record_start(name)
  try:
    value, metrics = fn()
  except StageFailure as e:
    ok, value, metrics, error = False, None, {}, str(e)
  except (Exception, SystemExit):  # The candidate's code may raise anything, sys.exit included.
    ok, value, metrics, error = False, None, {}, traceback.format_exc()[-_TRACEBACK_CHARS:]
  else:
    ok, error = True, None
  record_end(name, started, ok=ok, error=error, metrics=metrics)
  results["stages"][name] = {"ok": ok, "seconds": time.perf_counter() - started, "error": error,
                             "metrics": metrics}
  if not ok:
    results.update(failed_stage=name, error=error)
  return ok, value


def _import_candidate(path: Path):
  if not path.is_file():
    raise StageFailure(f"{path.name} not found in the working directory")
  module_name = f"_autoresearch_candidate_{uuid.uuid4().hex}"
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module  # Dataclasses and pickling look modules up by name.
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[module_name]
    raise
  return module, {}


def _run_train(train, data: TrainData, settings: Mapping[str, Any]):
  budget = float(settings["budget_seconds"])
  data._called = time.perf_counter()
  state = train(data, budget)
  finished = time.perf_counter()
  clock = data._clock if data._clock is not None else data._called
  metrics = {"compile_seconds": clock - data._called, "training_seconds": finished - clock,
             "clock_started": data._clock is not None, **data.reported}
  if metrics["compile_seconds"] > settings["compile_allowance_s"]:
    raise StageFailure(f"train spent {metrics['compile_seconds']:.1f} s before data.start_clock(); the compile "
                       f"allowance is {settings['compile_allowance_s']:.0f} s (start the clock after the first step)")
  if metrics["training_seconds"] > budget + settings["overrun_s"]:
    raise StageFailure(f"train ran {metrics['training_seconds']:.1f} s after the clock started; the budget is "
                       f"{budget:.0f} s (+{settings['overrun_s']:.0f} s grace)")
  return state, metrics


def _check_interface(module):
  functions = {name: getattr(module, name, None) for name in ("train", "predict")}
  for name, signature in (("train", "train(data, budget_seconds) -> state"),
                          ("predict", "predict(state, tokens) -> logits")):
    if not callable(functions[name]):
      raise StageFailure(f"train.py must define a function {signature}")
    try:
      inspect.signature(functions[name]).bind(object(), object())
    except TypeError as e:
      raise StageFailure(f"{name} must accept two arguments, {signature}: {e}") from None
    except ValueError:  # No signature to read (a builtin); the call will tell.
      pass
  return functions, {}


def read_train_data(settings: Mapping[str, Any]) -> TrainData:
  """The `data` argument of train: the training rows and vocabulary facts from the scorer's data directory."""
  root = Path(settings["data_dir"])
  meta = json.loads((root / "meta.json").read_text())
  load = lambda name: np.load(root / name, allow_pickle=False)
  return TrainData(load("train_tokens.npy"), load("train_targets.npy"), meta["vocab_size"], meta["seq_len"],
                   meta["bos_id"], load("token_bytes.npy"), settings["budget_seconds"])


def _save_state(state, path: Path) -> None:
  try:
    host = jax.device_get(state)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
      pickle.dump(host, f, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(path)
  except Exception as e:  # noqa: BLE001 - an unpicklable state is the candidate's fault
    raise StageFailure(f"the state train returned could not be saved for the predict phase ({type(e).__name__}: "
                       f"{e}); return arrays, dicts, lists or numbers") from None


def _predict(predict, queries_dir: Path, settings: Mapping[str, Any], sink) -> tuple[None, dict]:
  state_path = queries_dir / STATE_FILE
  if not state_path.is_file():
    raise StageFailure(f"no saved state ({STATE_FILE}) from the train phase")
  with open(state_path, "rb") as f:
    state = pickle.load(f)
  rows = np.load(queries_dir / "queries.npy", allow_pickle=False)
  batch = int(settings["eval_batch"])
  started = time.perf_counter()
  for start in range(0, len(rows), batch):
    sink(np.asarray(predict(state, rows[start:start + batch]), np.float32))
  return None, {"predict_seconds": time.perf_counter() - started, "query_rows": int(len(rows))}


def run_stages(settings: Mapping[str, Any], workdir: str | Path, phase: str = "train",
               queries_dir: str | Path | None = None,
               sink: Callable[[np.ndarray], None] = send_array) -> dict[str, Any]:
  """Runs one phase's stages on `workdir/train.py` (module docstring); {"ok", "failed_stage", "error", "stages"}.

  "stages" maps each stage run to its {"ok", "seconds", "error", "metrics"}; `sink` receives the logits of
  the predict phase (default: the results channel)."""
  settings = {**DEFAULT_SETTINGS, **settings}
  workdir = Path(workdir)
  results: dict[str, Any] = {"ok": False, "failed_stage": None, "error": None, "stages": {}}
  ok, module = _stage("import", results, lambda: _import_candidate(workdir / settings["filename"]))
  if ok:
    ok, functions = _stage("interface", results, lambda: _check_interface(module))
  if ok and phase == "train":
    data = read_train_data(settings)

    def train_and_save():
      state, metrics = _run_train(functions["train"], data, settings)
      _save_state(state, workdir / STATE_FILE)
      return None, metrics

    ok, _ = _stage("train", results, train_and_save)
  elif ok:
    ok, _ = _stage("predict", results, lambda: _predict(functions["predict"], Path(queries_dir), settings,
                                                        sink))
  results["ok"] = ok
  return results


def main(argv: list[str] | None = None) -> int:
  """Entry point: `settings.json train` or `settings.json predict QUERIES_DIR`; exit 0 when every stage passed."""
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) not in (2, 3) or argv[1] not in ("train", "predict") or (argv[1] == "predict") != (len(argv) == 3):
    print("usage: python -m aira_jax.design.tasks.autoresearch_harness settings.json (train | predict QUERIES_DIR)",
          file=sys.stderr)
    return 2
  settings = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
  results = run_stages(settings, Path.cwd(), argv[1], argv[2] if len(argv) == 3 else None)
  if results["error"]:
    print(results["error"], file=sys.stderr)
  return 0 if results["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
