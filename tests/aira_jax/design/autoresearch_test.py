"""Tests for the autoresearch design task: the factory, the fixed harness's stages and val_bpb, the baseline.

Everything runs in-process on a small synthetic corpus (seq_len 32, a few seconds of training).
"""

import json
import math
import pathlib
import textwrap

import numpy as np
import pytest

from aira_jax.design.records import RECORDS_ENV, read_records
from aira_jax.design.tasks import DesignTask, make_design_task
from aira_jax.design.tasks import autoresearch, autoresearch_harness
from aira_jax.tasks.base import IGNORE
from aira_jax.tasks.text.task import TextTask
from aira_jax.tasks.text.tokenizer import BPETokenizer

BUDGET = 6.0
UNIFORM = """
import numpy as np

def train(data, budget_seconds):
  data.start_clock()
  return lambda tokens: np.zeros((*tokens.shape, data.vocab_size), np.float32)
"""
TABLE = """
import numpy as np

def train(data, budget_seconds):
  table = np.random.default_rng(1).normal(size=(data.vocab_size, data.vocab_size)).astype(np.float32)
  return lambda tokens: table[tokens]
"""
PEEK = """
import numpy as np

def train(data, budget_seconds):
  def predict(tokens):  # One-hot of the next input token: perfect on text, and cheating.
    following = np.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)
    return 20.0 * np.eye(data.vocab_size, dtype=np.float32)[following]
  return predict
"""
RAISES = """
def train(data, budget_seconds):
  raise RuntimeError("boom in training")
"""
WRONG_SHAPE = """
import numpy as np

def train(data, budget_seconds):
  return lambda tokens: np.zeros((*tokens.shape, data.vocab_size - 1), np.float32)
"""
NOT_FINITE = """
import numpy as np

def train(data, budget_seconds):
  return lambda tokens: np.full((*tokens.shape, data.vocab_size), np.nan, np.float32)
"""
SLEEPS_BEFORE_CLOCK = """
import time
import numpy as np

def train(data, budget_seconds):
  time.sleep(0.5)
  data.start_clock()
  return lambda tokens: np.zeros((*tokens.shape, data.vocab_size), np.float32)
"""
OVER_BUDGET = """
import time
import numpy as np

def train(data, budget_seconds):
  data.start_clock()
  time.sleep(budget_seconds + 0.5)
  return lambda tokens: np.zeros((*tokens.shape, data.vocab_size), np.float32)
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


def _settings(corpus, **options) -> dict:
  options = {"path": corpus, "seq_len": 32, "budget_seconds": BUDGET, "max_documents": 1500,
             "eval_tokens": 2048, "eval_batch": 16, "compile_allowance_s": 60.0, **options}
  return dict(make_design_task("autoresearch", **options).settings)


def _run(tmp_path, source: str, settings: dict) -> dict:
  (tmp_path / "train.py").write_text(textwrap.dedent(source), encoding="utf-8")
  return autoresearch_harness.run_stages(settings, tmp_path)


def _eval_split(settings):
  task = autoresearch_harness.build_task(settings)
  return task, task.splits()


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory):
  settings = _settings(corpus)
  template = make_design_task("autoresearch").template
  return settings, _run(tmp_path_factory.mktemp("baseline"), template, settings)


def test_baseline_passes_every_stage_and_beats_uniform_and_unigram(baseline):
  settings, result = baseline
  assert result["ok"], result["error"]
  assert list(result["stages"]) == ["import", "interface", "train", "numerics", "score"]
  metrics = result["metrics"]
  task, splits = _eval_split(settings)
  targets = splits["validation"].targets
  scored = (targets != IGNORE) & (task.token_bytes[np.where(targets != IGNORE, targets, 0)] > 0)
  uniform = math.log2(task.tokenizer.vocab_size)  # One byte per token.
  train_targets = splits["train"].targets
  counts = np.bincount(train_targets[train_targets != IGNORE], minlength=task.tokenizer.vocab_size) + 1.0
  unigram = float(-np.log2(counts / counts.sum())[targets[scored]].mean())
  assert math.isfinite(metrics["val_bpb"])
  assert metrics["val_bpb"] < unigram < uniform
  assert metrics["eval_tokens"] == int(scored.sum())
  assert 0 < metrics["training_seconds"] <= BUDGET + 1.0
  assert metrics["steps"] > 0 and metrics["tokens_seen"] % (metrics["steps"] * 32) == 0


def test_future_peeking_predict_fails_numerics(corpus, tmp_path):
  result = _run(tmp_path, PEEK, _settings(corpus))
  assert not result["ok"] and result["failed_stage"] == "numerics"
  assert "predict looks at future tokens" in result["error"]
  assert "score" not in result["stages"]


@pytest.mark.parametrize("source, stage, message", [
    ("def train(data, budget_seconds)\n  return None\n", "import", "SyntaxError"),
    ("import no_such_module_anywhere\n", "import", "ModuleNotFoundError"),
    ("def fit(data, budget_seconds):\n  pass\n", "interface", "must define a function train"),
    ("def train(data):\n  pass\n", "interface", "must accept (data, budget_seconds)"),
    (RAISES, "train", "boom in training"),
    ("def train(data, budget_seconds):\n  return 3\n", "train", "must return predict"),
    (WRONG_SHAPE, "numerics", "expected (16, 32, 257)"),
    (NOT_FINITE, "numerics", "non-finite"),
])
def test_broken_candidates_fail_at_the_right_stage(corpus, tmp_path, source, stage, message):
  result = _run(tmp_path, source, _settings(corpus))
  assert not result["ok"]
  assert result["failed_stage"] == stage
  assert message in result["error"]
  assert list(result["stages"])[-1] == stage


def test_clock_rules_are_enforced(corpus, tmp_path):
  late = _run(tmp_path, SLEEPS_BEFORE_CLOCK, _settings(corpus, compile_allowance_s=0.2))
  assert late["failed_stage"] == "train" and "before data.start_clock()" in late["error"]
  over = _run(tmp_path, OVER_BUDGET, _settings(corpus, budget_seconds=0.3, overrun_s=0.2))
  assert over["failed_stage"] == "train" and "the budget is" in over["error"]


def test_uniform_logits_score_log2_vocab_bits_per_byte(corpus, tmp_path):
  settings = _settings(corpus)
  result = _run(tmp_path, UNIFORM, settings)
  assert result["ok"], result["error"]
  assert result["metrics"]["val_bpb"] == pytest.approx(math.log2(257), rel=1e-6)
  assert result["metrics"]["eval_bytes"] == result["metrics"]["eval_tokens"]


def test_val_bpb_matches_an_independent_computation(corpus, tmp_path):
  settings = _settings(corpus)
  result = _run(tmp_path, TABLE, settings)
  assert result["ok"], result["error"]
  _, splits = _eval_split(settings)
  inputs, targets = splits["validation"].inputs, splits["validation"].targets
  table = np.random.default_rng(1).normal(size=(257, 257))
  log_probs = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
  scored = (targets != IGNORE) & (targets != 256)
  nats = -log_probs[inputs, np.where(scored, targets, 0)][scored].sum()
  assert result["metrics"]["val_bpb"] == pytest.approx(nats / math.log(2) / scored.sum(), rel=1e-5)


def test_uniform_bpe_score_counts_bytes_per_token(corpus, tmp_path):
  settings = _settings(corpus, tokenizer="bpe", vocab_size=320, cache_dir=tmp_path / "cache")
  trainings = BPETokenizer.trainings
  result = _run(tmp_path, UNIFORM, settings)
  assert BPETokenizer.trainings == trainings  # The factory trained it; the (sandboxed) harness only loads.
  assert result["ok"], result["error"]
  task = TextTask(tokenizer="bpe", path=corpus, seq_len=32, vocab_size=320, max_documents=1500,
                  eval_tokens=2048, cache_dir=tmp_path / "cache")
  targets = task.splits()["validation"].targets
  ids = targets[(targets != IGNORE) & (targets != task.tokenizer.bos_id)]
  total_bytes = sum(len(task.tokenizer.decode([int(i)]).encode("utf-8")) for i in ids)
  expected = math.log2(task.tokenizer.vocab_size) * len(ids) / total_bytes
  assert total_bytes > len(ids)  # Merges make tokens longer than a byte.
  assert result["metrics"]["val_bpb"] == pytest.approx(expected, rel=1e-6)


def test_main_writes_records_and_exit_code(corpus, tmp_path, monkeypatch):
  settings = _settings(corpus)
  (tmp_path / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
  (tmp_path / "train.py").write_text(textwrap.dedent(UNIFORM), encoding="utf-8")
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv(RECORDS_ENV, str(tmp_path / "records.jsonl"))
  assert autoresearch_harness.main(["settings.json"]) == 0
  records = read_records(tmp_path / "records.jsonl")
  assert [(r["stage"], r["event"]) for r in records][-2:] == [("score", "start"), ("score", "end")]
  assert all(r["ok"] for r in records if r["event"] == "end")
  assert records[-1]["metrics"]["val_bpb"] == pytest.approx(math.log2(257), rel=1e-6)


def test_registry_builds_the_task_with_json_settings(tmp_path):
  task = make_design_task("autoresearch", path="corpus_dir", budget_seconds=30)
  assert isinstance(task, DesignTask) and task.name == "autoresearch"
  assert (task.filename, task.metric, task.lower_is_better) == ("train.py", "val_bpb", True)
  assert task.harness_module == "aira_jax.design.tasks.autoresearch_harness"
  assert json.loads(json.dumps(task.settings)) == task.settings
  assert pathlib.Path(task.settings["path"]).is_absolute()
  assert task.timeout_s > task.settings["budget_seconds"] + task.settings["compile_allowance_s"]
  assert "start_clock" in task.description and "30 s" in task.description
  assert task.template == autoresearch.TEMPLATE_PATH.read_text(encoding="utf-8")
  compile(task.template, "train.py", "exec")
  with pytest.raises(ValueError, match="tokenizer"):
    make_design_task("autoresearch", tokenizer="chars")
