"""The fixed harness of the autoresearch design task: trains a candidate `train.py` and scores its val_bpb.

Run by the sandbox as `python -m aira_jax.design.tasks.autoresearch_harness settings.json` in the candidate's
working directory (train.py next to settings.json); tests call `run_stages(settings, workdir)` in-process.

Before any stage the harness builds the text task from the settings (corpus, tokenizer, pinned content-hash
splits, BOS-aligned packing; see aira_jax.tasks.text). A failure there is the harness's, not the
candidate's: it raises and no stage is recorded. Then the stages, each with a start and an end record:

- import: load train.py (syntax errors and import-time exceptions fail here).
- interface: `train` exists, is callable and accepts (data, budget_seconds).
- train: `predict = train(data, budget_seconds)`, timed. The clock starts when train.py calls
  `data.start_clock()` (after its first, compiling step) or, if it never does, at the call. Fails when the
  candidate raises, returns no callable, spends more than `compile_allowance_s` before starting the clock, or
  trains for more than `budget_seconds + overrun_s` after it.
- numerics (after training, before scoring): on one evaluation batch, predict must return finite floating
  logits of shape (batch, seq_len, vocab_size), and must be causal: with every token after a random cut
  position replaced (by another row's tokens), the logits at positions up to the cut must not move by more
  than `causality_atol` (relative to the logit scale) - otherwise "predict looks at future tokens".
- score: val_bpb (aira_jax.tasks.text.bpb) over the fixed evaluation rows, with the training measurements.

What this does not protect against: train.py runs in this process, so it could in principle inspect the
harness's memory, read the corpus files itself, or keep learning inside a stateful predict from the
evaluation batches it is shown; the rules forbid that and the search reads the code. The causality check is
a spot check on one batch, not a proof.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aira_jax.design.records import record_end, record_start
from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.text.bpb import token_nll, val_bpb
from aira_jax.tasks.text.task import TextTask

DEFAULT_SETTINGS: dict[str, Any] = {
    "filename": "train.py", "tokenizer": "bytes", "path": None, "seq_len": 256, "vocab_size": 8192,
    "max_documents": None, "max_tokens": None, "eval_tokens": 65536, "cache_dir": None, "seed": 0,
    "budget_seconds": 60.0, "compile_allowance_s": 120.0, "overrun_s": 5.0, "eval_batch": 16,
    "causality_atol": 1e-4}
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


def _check_interface(module):
  train = getattr(module, "train", None)
  if not callable(train):
    raise StageFailure("train.py must define a function train(data, budget_seconds) -> predict")
  try:
    inspect.signature(train).bind(object(), 1.0)
  except TypeError as e:
    raise StageFailure(f"train must accept (data, budget_seconds): {e}") from None
  except ValueError:  # No signature to read (a builtin); the call will tell.
    pass
  return train, {}


def _run_train(train, data: TrainData, settings: Mapping[str, Any]):
  budget = float(settings["budget_seconds"])
  data._called = time.perf_counter()
  predict = train(data, budget)
  finished = time.perf_counter()
  clock = data._clock if data._clock is not None else data._called
  metrics = {"compile_seconds": clock - data._called, "training_seconds": finished - clock,
             "clock_started": data._clock is not None, **data.reported}
  if not callable(predict):
    raise StageFailure(f"train must return predict(tokens) -> logits, got {type(predict).__name__}")
  if metrics["compile_seconds"] > settings["compile_allowance_s"]:
    raise StageFailure(f"train spent {metrics['compile_seconds']:.1f} s before data.start_clock(); the compile "
                       f"allowance is {settings['compile_allowance_s']:.0f} s (start the clock after the first step)")
  if metrics["training_seconds"] > budget + settings["overrun_s"]:
    raise StageFailure(f"train ran {metrics['training_seconds']:.1f} s after the clock started; the budget is "
                       f"{budget:.0f} s (+{settings['overrun_s']:.0f} s grace)")
  return predict, metrics


def _logits(predict, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
  """predict(tokens) as float32 numpy, after checking dtype, shape and finiteness."""
  logits = predict(tokens)
  dtype = getattr(logits, "dtype", None)
  if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
    raise StageFailure(f"predict must return floating-point logits, got {type(logits).__name__} of dtype {dtype}")
  expected = (*tokens.shape, vocab_size)
  if tuple(logits.shape) != expected:
    raise StageFailure(f"predict returned logits of shape {tuple(logits.shape)}, expected {expected} "
                       "(batch, seq_len, vocab_size)")
  logits = np.asarray(logits, np.float32)
  if not np.all(np.isfinite(logits)):
    raise StageFailure("predict returned non-finite logits (nan or inf)")
  return logits


def _eval_batches(inputs: np.ndarray, batch: int):
  """(rows, count) for each evaluation batch; the last is padded with copies of row 0 to a full batch."""
  for start in range(0, len(inputs), batch):
    rows = inputs[start:start + batch]
    count = len(rows)
    if count < batch:
      rows = np.concatenate([rows, np.repeat(inputs[:1], batch - count, axis=0)], axis=0)
    yield rows, count


def _check_causal(predict, inputs: np.ndarray, vocab_size: int, settings: Mapping[str, Any]):
  """Shape / finiteness and the causality spot check on the first evaluation batch."""
  tokens, _ = next(_eval_batches(inputs, int(settings["eval_batch"])))
  batch, length = tokens.shape
  rng = np.random.default_rng(int(settings["seed"]))
  cuts = rng.integers(0, length - 1, batch)  # Last position that must not notice the change.
  future = np.arange(length)[None, :] > cuts[:, None]
  changed = np.where(future, np.roll(tokens, 1, axis=0), tokens)  # The next row's tail: real text.
  # Where that tail holds the same token (padding, a batch of one), shift the id so every future token moves.
  changed = np.where(future & (changed == tokens), (tokens + 1) % vocab_size, changed).astype(np.int32)
  original = _logits(predict, tokens, vocab_size)
  perturbed = _logits(predict, changed, vocab_size)
  past = ~future
  diff = np.where(past[:, :, None], np.abs(original - perturbed), 0.0)
  worst = float(diff.max())
  tolerance = float(settings["causality_atol"]) * max(1.0, float(np.abs(original).max()))
  if worst > tolerance:
    row, position, _ = np.unravel_index(int(diff.argmax()), diff.shape)
    raise StageFailure(f"predict looks at future tokens: changing the tokens after position {cuts[row]} of row "
                       f"{row} changed its logits at position {position} by {worst:.3g} (tolerance "
                       f"{tolerance:.2g}); logits at position t may depend only on tokens[:, :t + 1]")
  return None, {"max_past_logit_change": worst}


def _score(predict, inputs: np.ndarray, targets: np.ndarray, token_bytes: np.ndarray, vocab_size: int,
           settings: Mapping[str, Any], train_metrics: Mapping[str, Any]):
  nll_fn = jax.jit(token_nll)
  started = time.perf_counter()
  nll = []
  batch = int(settings["eval_batch"])
  for start, (rows, count) in zip(range(0, len(inputs), batch), _eval_batches(inputs, batch)):
    logits = _logits(predict, rows, vocab_size)
    batch_targets = targets[start:start + count]
    nll.append(np.asarray(nll_fn(logits[:count], batch_targets)))
  nll = np.concatenate(nll, axis=0)
  byte_lengths = np.where(targets != IGNORE, token_bytes[np.where(targets != IGNORE, targets, 0)], 0)
  metrics = {"val_bpb": val_bpb(nll, targets, token_bytes), "eval_tokens": int((byte_lengths > 0).sum()),
             "eval_bytes": int(byte_lengths.sum()),
             "eval_seconds": time.perf_counter() - started,
             **{k: train_metrics[k] for k in ("training_seconds", "compile_seconds", "steps", "tokens_seen",
                                              "train_loss") if k in train_metrics}}
  return None, metrics


def build_task(settings: Mapping[str, Any]) -> TextTask:
  """The text task the settings describe (corpus, tokenizer and pinned splits)."""
  return TextTask(tokenizer=settings["tokenizer"], path=settings["path"], seq_len=int(settings["seq_len"]),
                  vocab_size=int(settings["vocab_size"]), max_documents=settings["max_documents"],
                  max_tokens=settings["max_tokens"], eval_tokens=settings["eval_tokens"],
                  cache_dir=settings["cache_dir"], seed=int(settings["seed"]))


def run_stages(settings: Mapping[str, Any], workdir: str | Path) -> dict[str, Any]:
  """Runs every stage on `workdir/train.py`; {"ok", "failed_stage", "error", "metrics", "stages"}.

  "metrics" are the score stage's (empty unless every stage passed); "stages" maps each stage run to its
  {"ok", "seconds", "error", "metrics"}.
  """
  settings = {**DEFAULT_SETTINGS, **settings}
  task = build_task(settings)
  splits = task.splits()
  train_split, eval_split = splits["train"], splits["validation"]
  token_bytes = np.asarray(task.token_bytes)
  vocab_size = task.tokenizer.vocab_size
  results: dict[str, Any] = {"ok": False, "failed_stage": None, "error": None, "metrics": {}, "stages": {}}

  ok, module = _stage("import", results, lambda: _import_candidate(Path(workdir) / settings["filename"]))
  if ok:
    ok, train = _stage("interface", results, lambda: _check_interface(module))
  if ok:
    data = TrainData(train_split.inputs, train_split.targets, vocab_size, task.seq_len, task.tokenizer.bos_id,
                     token_bytes, settings["budget_seconds"])
    ok, predict = _stage("train", results, lambda: _run_train(train, data, settings))
  if ok:
    ok, _ = _stage("numerics", results, lambda: _check_causal(predict, eval_split.inputs, vocab_size, settings))
  if ok:
    train_metrics = results["stages"]["train"]["metrics"]
    ok, _ = _stage("score", results, lambda: _score(predict, eval_split.inputs, eval_split.targets, token_bytes,
                                                    vocab_size, settings, train_metrics))
  if ok:
    results.update(ok=True, metrics=results["stages"]["score"]["metrics"])
  return results


def main(argv: list[str] | None = None) -> int:
  """Entry point: reads settings.json, runs the stages in the current directory; exit 0 when all pass."""
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 1:
    print("usage: python -m aira_jax.design.tasks.autoresearch_harness settings.json", file=sys.stderr)
    return 2
  settings = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
  results = run_stages(settings, Path.cwd())
  print(json.dumps({"ok": results["ok"], "failed_stage": results["failed_stage"], "metrics": results["metrics"]}))
  if results["error"]:
    print(results["error"], file=sys.stderr)
  return 0 if results["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
