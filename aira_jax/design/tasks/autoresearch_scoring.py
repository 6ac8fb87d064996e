"""The trusted side of the autoresearch task: builds the text data, keeps the validation text, scores val_bpb.

`AutoresearchScorer(settings).prepare(root)` builds the text task in the parent (corpus, tokenizer, pinned
splits) and writes only the training rows, `token_bytes` and the vocabulary facts to `root`; the validation
rows and targets stay in this object, and the installed default corpus is hidden from the sandbox.
`score(run_phase)` runs two sandboxed phases:
1. "train": the harness imports train.py, calls `state = train(data, budget_seconds)` and saves the state in
   the candidate's directory. No validation text exists in that process. This phase is killed after
   budget + compile allowance + grace + `STARTUP_S`: however the candidate bends the in-process clock, it
   cannot train longer than that.
2. "predict": a fresh process loads train.py and the saved state and returns `predict(state, rows)` logits
   for query rows chosen here: every validation row, plus `causality_rows` check rows (a validation row whose
   tokens after a random cut are replaced by the tokens at the same positions of another validation row),
   shuffled together and cut into batches of `eval_batch` (the last padded with copies of the first query),
   so checks and scored rows arrive in the same calls with the same shapes. Check positions come from the
   operating system's randomness, not from anything the candidate can compute.
Here, never in the candidate's process: "causality" (each check row's log-probabilities up to its cut must
equal the original row's within `causality_atol` nats; otherwise "predict looks at future tokens") and
"score" (val_bpb from float32 log-softmax of the returned logits, nats summed per row in float64).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from aira_jax.design.sandbox import SandboxOutcome
from aira_jax.design.scoring import CandidateFault, Phase, TrustedScorer, Verdict
from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.text.bpb import val_bpb
from aira_jax.tasks.text.default_corpus import PACKAGE
from aira_jax.tasks.text.task import TextTask

STARTUP_S = 60.0
"""Seconds of the train phase's kill limit for starting Python, importing JAX and reading the data."""
HARNESS_KEYS = ("filename", "budget_seconds", "compile_allowance_s", "overrun_s", "eval_batch")


@dataclasses.dataclass(frozen=True)
class CausalityCheck:
  """Query row `check` equals validation row `original` up to position `cut`, another row's text after it."""
  original: int
  check: int
  cut: int


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


def choose_checks(rows: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, list[CausalityCheck]]:
  """`count` check rows (a row's prefix up to a cut, then another row's tokens) and where they came from.

  The cut is placed where the replacement changes the very next token, so a predictor that reads token
  t + 1 at position t changes its logits at the cut."""
  n, length = rows.shape
  checks, made = [], []
  for _ in range(count * 20):
    if len(made) == count or n < 2:
      break
    original, donor = rng.choice(n, 2, replace=False)
    differs = np.flatnonzero(rows[original, 1:] != rows[donor, 1:])  # position p + 1 differs: cut at p
    if len(differs) == 0:
      continue
    cut = int(rng.choice(differs))
    made.append(np.concatenate([rows[original, :cut + 1], rows[donor, cut + 1:]]))
    checks.append(CausalityCheck(int(original), n + len(checks), cut))
  return (np.stack(made).astype(np.int32) if made else np.zeros((0, length), np.int32)), checks


def build_text_task(settings: Mapping[str, Any]) -> TextTask:
  """The text task the settings describe (corpus, tokenizer and pinned splits)."""
  return TextTask(tokenizer=settings["tokenizer"], path=settings["path"], seq_len=int(settings["seq_len"]),
                  vocab_size=int(settings["vocab_size"]), max_documents=settings["max_documents"],
                  max_tokens=settings["max_tokens"], eval_tokens=settings["eval_tokens"],
                  cache_dir=settings["cache_dir"], seed=int(settings["seed"]))


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
    if len(validation.inputs) < 2:
      raise ValueError(f"autoresearch needs at least 2 validation rows for the causality check, got "
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

  def queries(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[CausalityCheck]]:
    """(query rows in sending order, padded to whole batches; the row index of each; the checks)."""
    check_rows, checks = choose_checks(self.rows, int(self.settings["causality_rows"]), rng)
    every = np.concatenate([self.rows, check_rows])
    order = rng.permutation(len(every))
    batch = int(self.settings["eval_batch"])
    order = np.concatenate([order, np.full(-len(order) % batch, order[0])])
    return every[order], order, checks

  def score(self, run_phase: Callable[[Phase], SandboxOutcome]) -> Verdict:
    verdict = Verdict()
    trained = run_phase(Phase(("settings.json", "train"), timeout_s=self.train_timeout_s()))
    if not verdict.add_phase(trained):
      return verdict
    verdict.metrics["train_phase_seconds"] = trained.seconds  # measured here: start to exit of the train process
    rows, order, checks = self.queries(np.random.default_rng(secrets.randbits(64)))
    keep = {c.original for c in checks} | {c.check for c in checks}
    queries = pathlib.Path(tempfile.mkdtemp(prefix="aira-queries-"))
    try:
      np.save(queries / "queries.npy", rows)
      batch, n = int(self.settings["eval_batch"]), len(self.rows)
      nll, kept = np.zeros(self.targets.shape, np.float64), {}

      def consume(reader) -> None:
        done: set[int] = set()
        for start in range(0, len(order), batch):
          logits = reader.read(f"logits of query batch {start // batch}", (batch, self.seq_len, self.vocab_size))
          for offset, index in enumerate(order[start:start + batch]):
            index = int(index)
            if index in done:  # padding
              continue
            done.add(index)
            if index < n:
              nll[index] = token_nll(logits[offset], self.targets[index])
            if index in keep:
              kept[index] = logits[offset].copy()

      outcome = run_phase(Phase(("settings.json", "predict", str(queries)), consume=consume,
                                data_dirs=(str(queries),), timeout_s=float(self.settings["eval_allowance_s"])))
    finally:
      shutil.rmtree(queries, ignore_errors=True)
    if verdict.add_phase(outcome) and verdict.trusted_stage("causality", lambda: self.check_causal(kept, checks)):
      verdict.trusted_stage("score", lambda: self.bpb(nll))
    return verdict

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
