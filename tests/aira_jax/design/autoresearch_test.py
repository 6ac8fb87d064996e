"""Tests for the autoresearch design task: the factory, the two-phase harness, the trusted scorer and val_bpb.

End-to-end cases run candidates through the real evaluator with process isolation (a train phase, then a
fresh predict phase: two subprocesses that each import JAX); failures the harness reports by itself, the clock
rules and the scorer's pieces (token_nll, bpb, choose_checks, plan, check_causal) run in-process against
the scorer's prepared data. A small synthetic corpus (seq_len 32, 2048 validation tokens) and a budget of a few
seconds keep it fast.
"""

import json
import math
import pathlib
import pickle
import textwrap

import numpy as np
import pytest

from aira_jax.design.evaluator import CandidateEvaluator
from aira_jax.design.records import RECORDS_ENV, read_records
from aira_jax.design.sandbox import SandboxLimits
from aira_jax.design.scoring import CandidateFault
from aira_jax.design.tasks import DesignTask, make_design_task
from aira_jax.design.tasks import autoresearch, autoresearch_harness, autoresearch_scoring
from aira_jax.design.tasks.autoresearch_scoring import (HARNESS_KEYS, AutoresearchScorer, CausalityCheck,
                                                        choose_checks, token_nll)
from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.text.bpb import val_bpb_from_logits
from aira_jax.tasks.text.task import TextTask
from aira_jax.tasks.text.tokenizer import BPETokenizer

BUDGET = 4.0
VOCAB = 257  # The byte tokenizer: 256 bytes and BOS.
UNIFORM_BPB = math.log2(VOCAB)  # One byte per token.
DATA_FILES = ["meta.json", "token_bytes.npy", "train_targets.npy", "train_tokens.npy"]
UNIFORM = """
import numpy as np

def train(data, budget_seconds):
  data.start_clock()
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):
  return np.zeros((*tokens.shape, state["vocab_size"]), np.float32)
"""
TABLE = """
import jax.numpy as jnp
import numpy as np

def train(data, budget_seconds):
  data.start_clock()
  table = np.random.default_rng(1).normal(size=(data.vocab_size, data.vocab_size)).astype(np.float32)
  return {"table": jnp.asarray(table)}  # Saved as numpy after jax.device_get.

def predict(state, tokens):
  assert isinstance(state["table"], np.ndarray), type(state["table"])
  return state["table"][tokens]
"""
PEEK = """
import numpy as np

def train(data, budget_seconds):
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):  # One-hot of the next input token: perfect on text, and cheating.
  following = np.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)
  return 20.0 * np.eye(state["vocab_size"], dtype=np.float32)[following]
"""
MEMORY_PEEK = """
import numpy as np

SEEN = []  # Every row this process answered, with the logits it sent.

def train(data, budget_seconds):
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):
  # Peeks at the next token, but where a row shares a prefix with one answered before, copies that row's
  # logits over the shared prefix: an original and its check row then agree up to the cut, whichever came
  # first. It beats a check that shows both rows to one process; it cannot beat one that splits them.
  out = []
  for row in np.asarray(tokens):
    logits = 20.0 * np.eye(state["vocab_size"], dtype=np.float32)[np.append(row[1:], row[0])]
    shared = [(int(np.argmax(np.append(old != row, True))), old_logits) for old, old_logits in SEEN]
    length, old_logits = max(shared, key=lambda pair: pair[0], default=(0, None))
    if length:
      logits[:length] = old_logits[:length]
    SEEN.append((row.copy(), logits))
    out.append(logits)
  return np.stack(out)
"""
BATCH_DEPENDENT = """
import numpy as np

def train(data, budget_seconds):
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):  # Every row gets the batch's mean one-hot of the next tokens.
  following = np.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)
  mean = 8.0 * np.eye(state["vocab_size"], dtype=np.float32)[following].mean(axis=0)
  return np.broadcast_to(mean, (*tokens.shape, state["vocab_size"])).copy()
"""
FORGER = """
import json
import os
import numpy as np
import aira_jax.design.tasks.autoresearch_scoring as scoring
import aira_jax.tasks.text.bpb as bpb

# Patch the scoring code in this process too: the scorer that counts runs in the parent, so this changes nothing.
bpb.val_bpb = lambda *args, **kwargs: 0.001
scoring.AutoresearchScorer.bpb = lambda self, nll: {"val_bpb": 0.001}
scoring.AutoresearchScorer.check_causal = lambda self, kept, checks: {}

FAKE = [{"stage": "score", "event": "start"},
        {"stage": "score", "event": "end", "ok": True, "seconds": 0.0, "error": None,
         "metrics": {"val_bpb": 0.001}}]

def forge():
  with open(os.environ["AIRA_DESIGN_RECORDS"], "a") as f:
    f.write("".join(json.dumps(record) + "\\n" for record in FAKE))
  print("val_bpb: 0.001")

def train(data, budget_seconds):
  data.start_clock()
  forge()
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):
  if not state.get("forged"):
    forge()
    state["forged"] = True
  return np.zeros((*tokens.shape, state["vocab_size"]), np.float32)
"""
RAISES = """
def train(data, budget_seconds):
  raise RuntimeError("boom in training")

def predict(state, tokens):
  return None
"""
UNPICKLABLE = """
import numpy as np

def train(data, budget_seconds):  # The old contract: a predict closure instead of a state.
  return lambda tokens: np.zeros((*tokens.shape, data.vocab_size), np.float32)

def predict(state, tokens):
  return state(tokens)
"""
WRONG_SHAPE = """
import numpy as np

def train(data, budget_seconds):
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):
  return np.zeros((*tokens.shape, state["vocab_size"] - 1), np.float32)
"""
NOT_FINITE = """
import numpy as np

def train(data, budget_seconds):
  return {"vocab_size": data.vocab_size}

def predict(state, tokens):
  return np.full((*tokens.shape, state["vocab_size"]), np.nan, np.float32)
"""
SLEEPS_BEFORE_CLOCK = """
import time

def train(data, budget_seconds):
  time.sleep(0.5)
  data.start_clock()
  return {}

def predict(state, tokens):
  return None
"""
OVER_BUDGET = """
import time

def train(data, budget_seconds):
  data.start_clock()
  time.sleep(budget_seconds + 0.5)
  return {}

def predict(state, tokens):
  return None
"""
BENDS_THE_CLOCK = """
import time

def train(data, budget_seconds):
  data.start_clock()
  data._clock += 1e6  # The in-process clock now says no time has passed.
  time.sleep(60)
  return {}

def predict(state, tokens):
  return None
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
  """~180 KB of sentences over a Zipfian 300-word lexicon, paragraphs separated by blank lines."""
  rng = np.random.default_rng(0)
  letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
  words = ["".join(rng.choice(letters, rng.integers(2, 8))) for _ in range(300)]
  weights = 1.0 / np.arange(1, 301)
  weights = weights / weights.sum()
  paragraphs = []
  for _ in range(2000):
    sentences = [" ".join(rng.choice(words, rng.integers(4, 12), p=weights)).capitalize() + "."
                 for _ in range(rng.integers(1, 4))]
    paragraphs.append(" ".join(sentences))
  path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
  path.write_text("\n\n".join(paragraphs), encoding="utf-8")
  return path


def _task(corpus, **options) -> DesignTask:
  options = {"path": corpus, "seq_len": 32, "budget_seconds": BUDGET, "max_documents": 1500,
             "eval_tokens": 2048, "eval_batch": 16, "compile_allowance_s": 60.0, **options}
  return make_design_task("autoresearch", **options)


def _evaluator(task: DesignTask) -> CandidateEvaluator:
  return CandidateEvaluator(task, SandboxLimits(timeout_s=task.timeout_s), isolation="process")


@pytest.fixture(scope="module")
def evaluator(corpus):
  """The real evaluator of the byte-level task, its data prepared once for the module."""
  evaluator = _evaluator(_task(corpus))
  yield evaluator
  evaluator.close()


@pytest.fixture(scope="module")
def scorer(corpus, tmp_path_factory) -> AutoresearchScorer:
  """The trusted scorer of the byte-level task, its data prepared in a directory of its own."""
  scorer = _task(corpus).make_scorer()
  scorer.prepare(tmp_path_factory.mktemp("data"))
  return scorer


def _train(tmp_path, source: str, settings: dict) -> dict:
  """The harness's train phase, in-process."""
  (tmp_path / "train.py").write_text(textwrap.dedent(source), encoding="utf-8")
  return autoresearch_harness.run_stages(settings, tmp_path, phase="train")


def _assert_fails(result, stage: str, message: str) -> None:
  """The evaluator's result failed at `stage` with `message`, and no later stage ran."""
  assert result.failed_stage == stage, (result.failed_stage, result.error)
  assert result.error.startswith(f"stage {stage} failed") and message in result.error, result.error
  assert list(result.stages)[-1] == stage and result.metrics == {}


# The factory and the template.

def test_registry_builds_the_task_with_json_settings():
  task = make_design_task("autoresearch", path="corpus_dir", budget_seconds=30)
  assert isinstance(task, DesignTask) and task.name == "autoresearch"
  assert (task.filename, task.metric, task.lower_is_better) == ("train.py", "val_bpb", True)
  assert task.harness_module == "aira_jax.design.tasks.autoresearch_harness"
  assert json.loads(json.dumps(task.settings)) == task.settings
  assert pathlib.Path(task.settings["path"]).is_absolute()
  assert task.timeout_s > task.settings["budget_seconds"] + task.settings["compile_allowance_s"]
  assert isinstance(task.make_scorer(), AutoresearchScorer)
  description = " ".join(task.description.split())
  for phrase in ("start_clock", "30 s", "train(data, budget_seconds: float) -> state", "predict(state, tokens)",
                 "predict looks at future tokens", "causal"):
    assert phrase in description, phrase
  assert task.template == autoresearch.TEMPLATE_PATH.read_text(encoding="utf-8")
  namespace = {}
  exec(compile(task.template, "train.py", "exec"), namespace)  # noqa: S102 - the shipped template
  assert callable(namespace["train"]) and callable(namespace["predict"])


@pytest.mark.parametrize("options, message", [
    ({"tokenizer": "chars"}, "tokenizer"),
    ({"budget_seconds": 0}, "budget_seconds"),
    ({"seq_len": 1}, "seq_len"),
    ({"eval_batch": 0}, "eval_batch"),
])
def test_factory_rejects_bad_options(options, message):
  with pytest.raises(ValueError, match=message):
    make_design_task("autoresearch", **options)


def test_paper_options_describe_the_paper_setting():
  options = {key: value for key, value in autoresearch.PAPER_OPTIONS.items() if key not in ("tokenizer", "vocab_size")}
  task = make_design_task("autoresearch", **options)
  assert task.settings["seq_len"] == 2048 and task.settings["budget_seconds"] == 300.0
  assert "300 seconds" in task.description and "20,971,520" in task.description


# The trusted scorer's pieces.

def test_prepared_data_holds_no_validation_text(scorer, corpus):
  root = scorer.data_dir
  assert sorted(p.name for p in root.iterdir()) == DATA_FILES
  meta = json.loads((root / "meta.json").read_text())
  assert meta == {"vocab_size": VOCAB, "seq_len": 32, "bos_id": meta["bos_id"]}
  train_rows = {row.tobytes() for row in np.load(root / "train_tokens.npy")}
  assert not train_rows & {row.tobytes() for row in scorer.rows}
  settings = scorer.harness_settings()
  assert set(settings) == {*HARNESS_KEYS, "data_dir"} and settings["data_dir"] == str(root)
  for key in ("path", "cache_dir", "eval_tokens", "seed", "tokenizer", "max_documents"):
    assert key not in settings, key
  assert str(corpus) in scorer.hidden_paths()  # Bubblewrap hides the corpus from the sandbox.


def test_token_nll_matches_a_float64_reference():
  rng = np.random.default_rng(0)
  logits = (3.0 * rng.normal(size=(4, 32, VOCAB))).astype(np.float32)
  targets = rng.integers(0, VOCAB, size=(4, 32)).astype(np.int32)
  targets[rng.random(targets.shape) < 0.2] = IGNORE
  wide = logits.astype(np.float64)
  top = wide.max(axis=-1, keepdims=True)
  logsumexp = top[..., 0] + np.log(np.exp(wide - top).sum(axis=-1))
  picked = np.take_along_axis(wide, np.where(targets == IGNORE, 0, targets)[..., None], axis=-1)[..., 0]
  expected = np.where(targets == IGNORE, 0.0, logsumexp - picked)
  nll = token_nll(logits, targets)
  assert nll.dtype == np.float64 and nll.shape == targets.shape
  assert np.all(nll[targets == IGNORE] == 0.0)
  np.testing.assert_allclose(nll, expected, rtol=1e-6, atol=1e-6)


def test_bpb_matches_val_bpb_from_logits(scorer):
  rng = np.random.default_rng(1)
  targets = scorer.targets
  logits = (2.0 * rng.normal(size=(*targets.shape, VOCAB))).astype(np.float32)
  metrics = scorer.bpb(token_nll(logits, targets))
  assert metrics["val_bpb"] == pytest.approx(val_bpb_from_logits(logits, targets, scorer.token_bytes), rel=1e-6)
  scored = (targets != IGNORE) & (scorer.token_bytes[np.where(targets != IGNORE, targets, 0)] > 0)
  assert metrics["eval_tokens"] == metrics["eval_bytes"] == int(scored.sum()) > 0  # Byte tokens: one byte each.
  uniform = scorer.bpb(token_nll(np.zeros_like(logits), targets))
  assert uniform["val_bpb"] == pytest.approx(UNIFORM_BPB, rel=1e-6)


def test_choose_checks_splice_a_donor_row_after_the_cut(scorer):
  rows = scorer.rows
  check_rows, checks = choose_checks(rows, 16, np.random.default_rng(2))
  assert check_rows.shape == (16, rows.shape[1]) and check_rows.dtype == np.int32 and len(checks) == 16
  for i, (row, check) in enumerate(zip(check_rows, checks)):
    assert check.check == len(rows) + i and 0 <= check.cut < rows.shape[1] - 1
    original = rows[check.original]
    assert np.array_equal(row[:check.cut + 1], original[:check.cut + 1])
    assert row[check.cut + 1] != original[check.cut + 1]  # The very next token changes.
    donors = [d for d in range(len(rows)) if d != check.original and np.array_equal(rows[d, check.cut + 1:],
                                                                                   row[check.cut + 1:])]
    assert donors, f"check {i}: no validation row supplies the tokens after the cut"


def test_choose_checks_on_tiny_rows_names_the_exact_donor():
  rows = np.arange(5 * 8, dtype=np.int32).reshape(5, 8)  # Every token differs between rows.
  check_rows, checks = choose_checks(rows, 6, np.random.default_rng(3))
  assert len(checks) == 6
  for row, check in zip(check_rows, checks):
    donor = int(row[-1]) // 8
    assert donor != check.original
    np.testing.assert_array_equal(row, np.concatenate([rows[check.original, :check.cut + 1],
                                                       rows[donor, check.cut + 1:]]))
  same = np.ones((4, 8), np.int32)  # Nothing to splice: no check can change the next token.
  assert choose_checks(same, 3, np.random.default_rng(0))[0].shape == (0, 8)


def test_plan_splits_rows_so_no_process_can_recognise_a_check(scorer):
  every, orders, checks = scorer.plan(np.random.default_rng(4))
  n, batch = len(scorer.rows), scorer.settings["eval_batch"]
  assert len(checks) == scorer.settings["causality_rows"] and len(every) == n + len(checks)
  np.testing.assert_array_equal(every[:n], scorer.rows)
  assert len(orders) == 2 and len(orders[0]) == len(orders[1]) and len(orders[0]) % batch == 0  # Same calls.
  distinct = [list(dict.fromkeys(order.tolist())) for order in orders]
  assert sorted(distinct[0] + distinct[1]) == list(range(len(every)))  # Every row once, in one process ...
  for order, rows in zip(orders, distinct):
    assert np.all(order[len(rows):] == order[0])  # ... then padding copies of its first query.
  where = {index: p for p, rows in enumerate(distinct) for index in rows}
  for c in checks:
    row = every[c.check]
    np.testing.assert_array_equal(row[:c.cut + 1], scorer.rows[c.original, :c.cut + 1])
    assert row[c.cut + 1] != scorer.rows[c.original, c.cut + 1]
    np.testing.assert_array_equal(row[c.cut + 1:], scorer.rows[c.donor, c.cut + 1:])
    # Original and donor live in the other process: an original has no partner beside it to give it away.
    assert where[c.original] == where[c.donor] != where[c.check]


def test_check_causal_compares_logits_up_to_the_cut(scorer):
  logits = np.random.default_rng(5).normal(size=(32, VOCAB)).astype(np.float32)
  checks = [CausalityCheck(original=0, check=70, cut=10)]
  after = logits.copy()
  after[11:] += 5.0  # Positions after the cut may change freely.
  after[:11] += np.random.default_rng(6).normal(scale=1e-6, size=(11, VOCAB))  # Float noise passes.
  metrics = scorer.check_causal({0: logits, 70: after}, checks)
  assert metrics["causality_checks"] == 1 and 0 <= metrics["max_past_logprob_change"] < 1e-4
  shifted = logits + 1e3  # A constant shift changes no probability: not a difference.
  assert scorer.check_causal({0: logits, 70: shifted}, checks)["max_past_logprob_change"] < 1e-4
  peeking = logits.copy()
  peeking[10, 3] += 0.05
  with pytest.raises(CandidateFault, match="predict looks at future tokens.*position 10"):
    scorer.check_causal({0: logits, 70: peeking}, checks)


def test_check_causal_is_not_fooled_by_a_constant_logit_shift(scorer):
  logits = np.full((32, VOCAB), 1e6, np.float32)
  peeking = logits.copy()
  peeking[10, 3] += 20.0  # A one-hot of the (changed) next token, as PEEK sends, on top of the shift.
  with pytest.raises(CandidateFault, match="predict looks at future tokens"):
    scorer.check_causal({0: logits, 70: peeking}, [CausalityCheck(original=0, check=70, cut=10)])


# The harness, in-process.

@pytest.mark.parametrize("source, stage, message", [
    ("def train(data, budget_seconds)\n  return None\n", "import", "SyntaxError"),
    ("import no_such_module_anywhere\n", "import", "ModuleNotFoundError"),
    ("def fit(data, budget_seconds):\n  pass\n", "interface",
     "must define a function train(data, budget_seconds) -> state"),
    ("def train(data, budget_seconds):\n  pass\n", "interface", "must define a function predict(state, tokens)"),
    ("def train(data):\n  pass\n\ndef predict(state, tokens):\n  pass\n", "interface",
     "train must accept two arguments"),
    ("def train(data, budget_seconds):\n  pass\n\ndef predict(tokens):\n  pass\n", "interface",
     "predict must accept two arguments"),
    (RAISES, "train", "boom in training"),
    (UNPICKLABLE, "train", "could not be saved for the predict phase"),
])
def test_broken_candidates_fail_at_the_right_harness_stage(scorer, tmp_path, source, stage, message):
  result = _train(tmp_path, source, scorer.harness_settings())
  assert not result["ok"]
  assert result["failed_stage"] == stage
  assert message in result["error"]
  assert list(result["stages"])[-1] == stage
  if source is not UNPICKLABLE:  # A failed save leaves a truncated state.pkl; the predict phase never runs then.
    assert not (tmp_path / autoresearch_harness.STATE_FILE).exists()


def test_clock_rules_are_enforced(scorer, tmp_path):
  settings = scorer.harness_settings()
  late = _train(tmp_path, SLEEPS_BEFORE_CLOCK, {**settings, "compile_allowance_s": 0.2})
  assert late["failed_stage"] == "train" and "before data.start_clock()" in late["error"]
  over = _train(tmp_path, OVER_BUDGET, {**settings, "budget_seconds": 0.3, "overrun_s": 0.2})
  assert over["failed_stage"] == "train" and "the budget is" in over["error"]


def test_main_runs_the_train_phase_and_run_stages_the_predict_phase(scorer, tmp_path, monkeypatch):
  settings = scorer.harness_settings()
  (tmp_path / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
  (tmp_path / "train.py").write_text(textwrap.dedent(UNIFORM), encoding="utf-8")
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv(RECORDS_ENV, str(tmp_path / "records.jsonl"))
  assert autoresearch_harness.main(["settings.json"]) == 2  # The phase is required.
  assert autoresearch_harness.main(["settings.json", "predict"]) == 2  # ... and predict needs its queries.
  assert autoresearch_harness.main(["settings.json", "train"]) == 0
  records = read_records(tmp_path / "records.jsonl")
  assert [r["stage"] for r in records if r["event"] == "end"] == ["import", "interface", "train"]
  assert all(r["ok"] for r in records if r["event"] == "end")
  with open(tmp_path / autoresearch_harness.STATE_FILE, "rb") as f:
    assert pickle.load(f) == {"vocab_size": VOCAB}
  every, orders, _ = scorer.plan(np.random.default_rng(6))
  order = orders[0]
  np.save(tmp_path / "queries.npy", every[order])
  sent = []
  result = autoresearch_harness.run_stages(settings, tmp_path, phase="predict", queries_dir=tmp_path,
                                           sink=sent.append)
  assert result["ok"], result["error"]
  assert list(result["stages"]) == ["import", "interface", "predict"]
  assert result["stages"]["predict"]["metrics"]["query_rows"] == len(order)
  assert len(sent) == len(order) // settings["eval_batch"]
  assert all(logits.shape == (settings["eval_batch"], 32, VOCAB) and logits.dtype == np.float32 for logits in sent)


def test_predict_phase_without_a_saved_state_fails(scorer, tmp_path):
  (tmp_path / "train.py").write_text(textwrap.dedent(UNIFORM), encoding="utf-8")
  np.save(tmp_path / "queries.npy", scorer.rows[:16])
  result = autoresearch_harness.run_stages(scorer.harness_settings(), tmp_path, phase="predict",
                                           queries_dir=tmp_path, sink=[].append)
  assert result["failed_stage"] == "predict" and "no saved state" in result["error"]


# End to end, through the evaluator.

def test_uniform_logits_score_log2_vocab_bits_per_byte(evaluator):
  result = evaluator.run(textwrap.dedent(UNIFORM))
  assert result.failed_stage is None, result.error
  assert list(result.stages) == ["import", "interface", "train", "predict", "causality", "score"]
  assert result.stages["causality"]["trusted"] and result.stages["score"]["trusted"]
  assert result.metrics["val_bpb"] == pytest.approx(UNIFORM_BPB, rel=1e-6)
  assert result.metrics["eval_bytes"] == result.metrics["eval_tokens"]
  assert result.metrics["causality_checks"] == 16 and result.metrics["max_past_logprob_change"] == 0.0


def test_val_bpb_matches_an_independent_computation(evaluator):
  result = evaluator.run(textwrap.dedent(TABLE))
  assert result.failed_stage is None, result.error
  validation = autoresearch_scoring.build_text_task(evaluator.task.settings).splits()["validation"]
  inputs, targets = np.asarray(validation.inputs), np.asarray(validation.targets)
  table = np.random.default_rng(1).normal(size=(VOCAB, VOCAB)).astype(np.float32).astype(np.float64)
  log_probs = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
  scored = (targets != IGNORE) & (targets != 256)  # 256 = BOS, no bytes.
  nats = -log_probs[inputs, np.where(scored, targets, 0)][scored].sum()
  assert result.metrics["val_bpb"] == pytest.approx(nats / math.log(2) / scored.sum(), rel=1e-5)


def test_future_peeking_predict_fails_causality(evaluator):
  result = evaluator.run(textwrap.dedent(PEEK))
  _assert_fails(result, "causality", "predict looks at future tokens")
  assert result.stages["predict"]["ok"] and "score" not in result.stages


def test_a_peeker_that_remembers_rows_across_calls_fails_causality(evaluator):
  result = evaluator.run(textwrap.dedent(MEMORY_PEEK))
  _assert_fails(result, "causality", "predict looks at future tokens")


def test_batch_dependent_predict_does_not_beat_uniform(evaluator):
  result = evaluator.run(textwrap.dedent(BATCH_DEPENDENT))
  if result.failed_stage is not None:  # A check row and its original landed in different batches.
    _assert_fails(result, "causality", "predict looks at future tokens")
  else:
    assert result.metrics["val_bpb"] >= UNIFORM_BPB


@pytest.mark.parametrize("source, stage, message", [
    (RAISES, "train", "boom in training"),
    (WRONG_SHAPE, "predict", "expected an array of shape (16, 32, 257), got (16, 32, 256)"),
    (NOT_FINITE, "predict", "non-finite"),
])
def test_broken_candidates_fail_at_the_right_stage(evaluator, source, stage, message):
  _assert_fails(evaluator.run(textwrap.dedent(source)), stage, message)


def test_forged_records_and_patched_scoring_code_do_not_change_the_score(evaluator):
  result = evaluator.run(textwrap.dedent(FORGER))
  assert result.failed_stage is None, result.error
  assert result.metrics["val_bpb"] == pytest.approx(UNIFORM_BPB, rel=1e-6)
  assert result.stages["score"]["trusted"] and result.stages["score"]["metrics"]["val_bpb"] == result.metrics["val_bpb"]


def test_training_past_the_kill_limit_is_killed(corpus, monkeypatch):
  monkeypatch.setattr(autoresearch_scoring, "STARTUP_S", 4.0)
  evaluator = _evaluator(_task(corpus, budget_seconds=0.5, compile_allowance_s=0.5, overrun_s=0.5))
  try:
    result = evaluator.run(textwrap.dedent(BENDS_THE_CLOCK))
  finally:
    evaluator.close()
  assert result.failed_stage == "train" and result.killed == "timeout"
  assert result.error == "killed (timeout) during stage train"
  assert result.seconds < 15


def test_uniform_bpe_score_counts_bytes_per_token(corpus, tmp_path):
  task = _task(corpus, tokenizer="bpe", vocab_size=320, cache_dir=tmp_path / "cache")
  trainings = BPETokenizer.trainings
  evaluator = _evaluator(task)
  try:
    result = evaluator.run(textwrap.dedent(UNIFORM))
  finally:
    evaluator.close()
  assert BPETokenizer.trainings == trainings  # The factory trained it; the scorer only loads.
  assert result.failed_stage is None, result.error
  text = TextTask(tokenizer="bpe", path=corpus, seq_len=32, vocab_size=320, max_documents=1500,
                  eval_tokens=2048, cache_dir=tmp_path / "cache")
  targets = np.asarray(text.splits()["validation"].targets)
  ids = targets[(targets != IGNORE) & (targets != text.tokenizer.bos_id)]
  total_bytes = sum(len(text.tokenizer.decode([int(i)]).encode("utf-8")) for i in ids)
  expected = math.log2(text.tokenizer.vocab_size) * len(ids) / total_bytes
  assert total_bytes > len(ids)  # Merges make tokens longer than a byte.
  assert result.metrics["val_bpb"] == pytest.approx(expected, rel=1e-6)


def test_baseline_passes_every_stage_and_beats_uniform_and_unigram(evaluator):
  result = evaluator.run(evaluator.task.template)
  assert result.failed_stage is None, result.error
  assert list(result.stages) == ["import", "interface", "train", "predict", "causality", "score"]
  scorer = evaluator.scorer
  targets = scorer.targets
  scored = (targets != IGNORE) & (scorer.token_bytes[np.where(targets != IGNORE, targets, 0)] > 0)
  train_targets = np.load(scorer.data_dir / "train_targets.npy")
  counts = np.bincount(train_targets[train_targets != IGNORE], minlength=VOCAB) + 1.0
  unigram = float(-np.log2(counts / counts.sum())[targets[scored]].mean())
  metrics, reported = result.metrics, result.reported
  assert metrics["val_bpb"] < unigram < UNIFORM_BPB
  assert metrics["eval_tokens"] == int(scored.sum())
  assert metrics["max_past_logprob_change"] <= 1e-4  # Causal up to float noise.
  assert 0 < reported["training_seconds"] <= BUDGET + 1.0
  assert reported["steps"] > 0 and reported["tokens_seen"] % (reported["steps"] * 32) == 0
