"""The trusted side of the autoresearch task: builds the text data, keeps the validation text, scores val_bpb.

`AutoresearchScorer(settings).prepare(root)` builds the text task in the parent (corpus, tokenizer, pinned
splits) and writes only the training rows, `token_bytes` and the vocabulary facts to `root`; the validation
rows and targets stay in this object, and the installed default corpus is hidden from the sandbox.
`score(run_phase)` runs two sandboxed phases:
1. "train": the harness imports train.py, calls `state = train(data, budget_seconds)` and saves the state in
   the candidate's directory. No validation text exists in that process. This phase is killed after
   budget + compile allowance + grace + `STARTUP_S`: however the candidate bends the in-process clock, it
   cannot train longer than that.
2. "predict", twice: each time a fresh process, in a fresh working directory, loads train.py and a copy of
   the saved state (read-only, copied here as a regular file: the train phase cannot change it later or point
   it elsewhere) and returns `predict(state, rows)` logits for query rows chosen here. The validation rows are
   split at random between the two processes; `causality_rows` check rows (a validation row whose tokens after
   a random cut are replaced by the tokens at the same positions of another validation row) each go to the
   process that holds neither of their two source rows (`plan`). An original therefore has no partner in its
   process, neither process can remember what the other saw, and both make the same calls with the same shapes
   (batches of `eval_batch`, padded with copies of the first query): a predictor cannot tell which scored rows
   will be compared, so it must be causal on all of them. Check positions come from the operating system's
   randomness, not from anything the candidate can compute.
Here, never in the candidate's process: "causality" (each check row's log-probabilities up to its cut must
equal the original row's within `causality_atol` nats; otherwise "predict looks at future tokens") and
"score" (val_bpb from float32 log-softmax of the returned logits, nats summed per row in float64).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from aira_jax.design.sandbox import SandboxOutcome
from aira_jax.design.scoring import CandidateFault, Phase, TrustedScorer, Verdict
from aira_jax.design.tasks.autoresearch_harness import STATE_FILE
from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.text.bpb import val_bpb
from aira_jax.tasks.text.default_corpus import PACKAGE
from aira_jax.tasks.text.task import TextTask

PREDICT_PROCESSES = 2
"""Fresh predict processes per candidate; the rows are split between them (see `AutoresearchScorer.plan`)."""
STARTUP_S = 60.0
"""Seconds of the train phase's kill limit for starting Python, importing JAX and reading the data."""
HARNESS_KEYS = ("filename", "budget_seconds", "compile_allowance_s", "overrun_s", "eval_batch")


@dataclasses.dataclass(frozen=True)
class CausalityCheck:
  """Query row `check` equals validation row `original` up to position `cut` and row `donor` after it."""
  original: int
  check: int
  cut: int
  donor: int | None = None


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """Per-position next-token cross-entropy in nats (float64), 0 where the target is IGNORE."""
  logits = logits.astype(np.float32)
  top = logits.max(axis=-1, keepdims=True)
  logsumexp = (top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))).astype(np.float64)
  keep = targets != IGNORE
  picked = np.take_along_axis(logits, np.where(keep, targets, 0)[..., None], axis=-1)[..., 0]
  return np.where(keep, logsumexp - picked.astype(np.float64), 0.0)


LOGP_FLOOR = -30.0
"""Log-probabilities below this (e^-30) count as equal in the causality check: float noise lives there."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
  """float64 log-softmax over the last axis, clipped below at LOGP_FLOOR."""
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return np.maximum(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)), LOGP_FLOOR)


def choose_checks(rows: np.ndarray, count: int, rng: np.random.Generator,
                  pool: np.ndarray | None = None) -> tuple[np.ndarray, list[CausalityCheck]]:
  """`count` check rows (a row's prefix up to a cut, then another row's tokens) and where they came from;
  original and donor are drawn from `pool` (row indices; default all rows).

  The cut is placed where the replacement changes the very next token, so a predictor that reads token
  t + 1 at position t changes its logits at the cut."""
  n, length = rows.shape
  pool = np.arange(n) if pool is None else np.asarray(pool)
  checks, made = [], []
  for _ in range(count * 20):
    if len(made) == count or len(pool) < 2:
      break
    original, donor = rng.choice(pool, 2, replace=False)
    differs = np.flatnonzero(rows[original, 1:] != rows[donor, 1:])  # position p + 1 differs: cut at p
    if len(differs) == 0:
      continue
    cut = int(rng.choice(differs))
    made.append(np.concatenate([rows[original, :cut + 1], rows[donor, cut + 1:]]))
    checks.append(CausalityCheck(int(original), n + len(checks), cut, int(donor)))
  return (np.stack(made).astype(np.int32) if made else np.zeros((0, length), np.int32)), checks


def build_text_task(settings: Mapping[str, Any]) -> TextTask:
  """The text task the settings describe (corpus, tokenizer and pinned splits)."""
  return TextTask(tokenizer=settings["tokenizer"], path=settings["path"], seq_len=int(settings["seq_len"]),
                  vocab_size=int(settings["vocab_size"]), max_documents=settings["max_documents"],
                  max_tokens=settings["max_tokens"], eval_tokens=settings["eval_tokens"],
                  cache_dir=settings["cache_dir"], seed=int(settings["seed"]))


def read_regular_file(path: pathlib.Path) -> bytes:
  """The bytes of `path`, which must be a regular file and not a link (the candidate wrote its directory: a
  link could point the parent at a host file); OSError otherwise."""
  fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      raise OSError(f"{path.name} is not a regular file")
    with os.fdopen(os.dup(fd), "rb") as f:
      return f.read()
  finally:
    os.close(fd)


class AutoresearchScorer(TrustedScorer):
  """The trusted scorer of the autoresearch task (module docstring)."""

  def __init__(self, settings: Mapping[str, Any]):
    self.settings = dict(settings)

  def prepare(self, root: pathlib.Path) -> None:
    task = build_text_task(self.settings)
    splits = task.splits()
    train, validation = splits["train"], splits["validation"]
    np.save(root / "train_tokens.npy", np.asarray(train.inputs, np.int32))
    np.save(root / "train_targets.npy", np.asarray(train.targets, np.int32))
    self.token_bytes = np.asarray(task.token_bytes)
    np.save(root / "token_bytes.npy", self.token_bytes)
    self.vocab_size, self.seq_len = int(task.tokenizer.vocab_size), int(task.seq_len)
    (root / "meta.json").write_text(json.dumps({"vocab_size": self.vocab_size, "seq_len": self.seq_len,
                                                "bos_id": int(task.tokenizer.bos_id)}))
    if len(validation.inputs) < 2 * PREDICT_PROCESSES:
      raise ValueError(f"autoresearch needs at least {2 * PREDICT_PROCESSES} validation rows for the causality "
                       f"check, got "
                       f"{len(validation.inputs)}; raise eval_tokens or use a larger corpus")
    self.rows = np.asarray(validation.inputs, np.int32)
    self.targets = np.asarray(validation.targets, np.int32)
    self.data_dir = root

  def harness_settings(self) -> dict[str, Any]:
    if self.data_dir is None:
      raise RuntimeError("AutoresearchScorer.prepare(root) must run before harness_settings()")
    return {**{key: self.settings[key] for key in HARNESS_KEYS}, "data_dir": str(self.data_dir)}

  def hidden_paths(self) -> tuple[str, ...]:
    spec = importlib.util.find_spec(PACKAGE)
    corpus = list(spec.submodule_search_locations or []) if spec is not None else []
    return tuple(str(p) for p in (*corpus, self.settings.get("cache_dir"), self.settings.get("path")) if p)

  def train_timeout_s(self) -> float:
    s = self.settings
    return float(s["budget_seconds"] + s["compile_allowance_s"] + s["overrun_s"] + STARTUP_S)

  def plan(self, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], list[CausalityCheck]]:
    """(every query row: the validation rows, then the check rows; the global row index each predict process
    gets, in sending order, padded to the same number of whole batches; the checks).

    The validation rows are split at random between two processes; each check row goes to the process that
    holds neither its original nor its donor. A predictor that peeks must therefore be causal on every row
    that might be an original, i.e. on all of them: an original has no partner in its own process to give it
    away, and a fresh process cannot remember what the other one saw. Both processes make the same number of
    calls with the same shapes."""
    halves = np.array_split(rng.permutation(len(self.rows)), PREDICT_PROCESSES)
    count, every, checks, mine = int(self.settings["causality_rows"]), [self.rows], [], [[], []]
    for process in range(PREDICT_PROCESSES):
      made, found = choose_checks(self.rows, len(range(process, count, PREDICT_PROCESSES)), rng,
                                  pool=halves[1 - process])
      offset = len(self.rows) + len(checks)
      checks += [dataclasses.replace(c, check=offset + i) for i, c in enumerate(found)]
      mine[process] = list(range(offset, offset + len(found)))
      every.append(made)
    batch = int(self.settings["eval_batch"])
    orders = [rng.permutation(np.concatenate([halves[p], np.asarray(mine[p], int)])) for p in range(PREDICT_PROCESSES)]
    batches = max(-(-len(order) // batch) for order in orders)
    orders = [np.concatenate([order, np.full(batches * batch - len(order), order[0])]) for order in orders]
    return np.concatenate(every).astype(np.int32), orders, checks

  def score(self, run_phase: Callable[[Phase], SandboxOutcome]) -> Verdict:
    verdict = Verdict()
    trained = run_phase(Phase(("settings.json", "train"), timeout_s=self.train_timeout_s()))
    if not verdict.add_phase(trained):
      return verdict
    verdict.metrics["train_phase_seconds"] = trained.seconds  # measured here: start to exit of the train process
    try:
      state = read_regular_file(trained.workdir / STATE_FILE)
    except OSError as e:
      verdict.fail("train", f"stage train failed: no saved state for the predict phase ({e})")
      return verdict
    every, orders, checks = self.plan(np.random.default_rng(secrets.randbits(64)))
    keep = {c.original for c in checks} | {c.check for c in checks}
    nll, kept = np.zeros(self.targets.shape, np.float64), {}
    for order in orders:
      outcome = self._predict(run_phase, state, every, order, keep, nll, kept)
      if not verdict.add_phase(outcome):
        return verdict
    if verdict.trusted_stage("causality", lambda: self.check_causal(kept, checks)):
      verdict.trusted_stage("score", lambda: self.bpb(nll))
    return verdict

  def _predict(self, run_phase, state: bytes, every: np.ndarray, order: np.ndarray, keep: set[int],
               nll: np.ndarray, kept: dict[int, np.ndarray]) -> SandboxOutcome:
    """One fresh predict process over the rows `order` names; fills `nll` (scored rows) and `kept` (rows the
    causality check compares)."""
    batch, n = int(self.settings["eval_batch"]), len(self.rows)

    def consume(reader) -> None:
      done: set[int] = set()
      for start in range(0, len(order), batch):
        logits = reader.read(f"logits of query batch {start // batch}", (batch, self.seq_len, self.vocab_size))
        for offset, index in enumerate(order[start:start + batch].tolist()):
          if index in done:  # padding
            continue
          done.add(index)
          if index < n:
            nll[index] = token_nll(logits[offset], self.targets[index])
          if index in keep:
            kept[index] = logits[offset].copy()

    inputs = pathlib.Path(tempfile.mkdtemp(prefix="aira-queries-"))
    try:
      np.save(inputs / "queries.npy", every[order])
      (inputs / STATE_FILE).write_bytes(state)
      return run_phase(Phase(("settings.json", "predict", str(inputs)), consume=consume, data_dirs=(str(inputs),),
                             timeout_s=float(self.settings["eval_allowance_s"])))
    finally:
      shutil.rmtree(inputs, ignore_errors=True)

  def check_causal(self, kept: dict[int, np.ndarray], checks: list[CausalityCheck]) -> dict[str, Any]:
    """CandidateFault when a check row's log-probabilities up to its cut differ from the original row's by more
    than `causality_atol` nats. Log-probabilities, not logits: a constant added to the logits changes nothing
    the metric sees, so it must not widen the tolerance either; both sides are clipped at `LOGP_FLOOR`."""
    worst, tolerance = 0.0, float(self.settings["causality_atol"])
    for c in checks:
      original = log_softmax(kept[c.original][:c.cut + 1])
      changed = log_softmax(kept[c.check][:c.cut + 1])
      per_position = np.abs(original - changed).max(axis=-1)
      diff = float(per_position.max())
      if diff > tolerance:
        raise CandidateFault(f"predict looks at future tokens: replacing the tokens after position {c.cut} of a "
                             f"validation row changed its log-probabilities at position {int(per_position.argmax())} "
                             f"by {diff:.3g} nats (tolerance {tolerance:.2g}); logits at position t may depend only "
                             "on tokens[:, :t + 1] of the same row")
      worst = max(worst, diff)
    return {"causality_checks": len(checks), "max_past_logprob_change": worst}

  def bpb(self, nll: np.ndarray) -> dict[str, Any]:
    """val_bpb of the per-token nats over the kept validation targets."""
    scored = np.where(self.targets != IGNORE, self.token_bytes[np.where(self.targets != IGNORE, self.targets, 0)], 0)
    return {"val_bpb": val_bpb(nll, self.targets, self.token_bytes), "eval_tokens": int((scored > 0).sum()),
            "eval_bytes": int(scored.sum())}
