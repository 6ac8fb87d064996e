"""Tests for `aira_jax.results.store`: node round trip, idempotence, concurrent writers, persistence, WAL, schema
versions, training-run upserts, non-finite values and read-only readers."""

import sqlite3
import threading

import pytest

from aira_jax.agents.journal import Journal, Node
from aira_jax.results.store import SCHEMA_VERSION, EvaluationRow, ResultStore, SchemaVersionError, TrainingRunRow


def _nodes():
  return [
      Node(id="d1", operator="draft", plan="two blocks", payload="2A+2M", metric=0.5, timings={"llm": 1.25},
           tokens=40, agent_id="a", created_at=1000.5, output_excerpt="step 1\nloss 2.0\n"),
      Node(id="d2", operator="draft", is_buggy=True, error="OOM", agent_id="b", created_at=1001.0,
           lower_is_better=True),
      Node(id="x1", operator="crossover", parent_ids=("d1", "d2"), metric=0.75, payload="AMSM", agent_id="a",
           timings={"llm": 0.5, "train": 41.0}, created_at=1002.25),
  ]


def test_nodes_round_trip_in_insertion_order(tmp_path):
  with ResultStore(tmp_path / "run.sqlite") as store:
    for node in _nodes():
      assert store.add_node(node)
    assert store.nodes() == _nodes()


def test_adding_a_node_twice_or_resyncing_a_journal_does_not_duplicate(tmp_path):
  journal = Journal()
  for node in _nodes():
    journal.append(node)
  with ResultStore(tmp_path / "run.sqlite") as store:
    assert store.add_node(_nodes()[0])
    assert not store.add_node(_nodes()[0])
    assert store.sync_from_journal(journal) == 2
    assert store.sync_from_journal(journal) == 0
    assert [n.id for n in store.nodes()] == ["d1", "d2", "x1"]


def test_concurrent_writers_all_land(tmp_path):
  threads_count, per_thread = 8, 50
  errors = []
  with ResultStore(tmp_path / "run.sqlite") as store:
    start = threading.Barrier(threads_count)

    def write(worker):
      try:
        start.wait()
        for i in range(per_thread):
          store.add_evaluation(f"layout{worker}", task="mqar", metric=worker + i / 100, seed=i,
                               details={"worker": worker})
      except Exception as e:  # surfaced below: an exception in a thread would otherwise pass silently
        errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(threads_count)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    assert not errors
    rows = store.evaluations()
  assert len(rows) == threads_count * per_thread
  assert len({row.id for row in rows}) == len(rows)
  with ResultStore(tmp_path / "run.sqlite") as reopened:
    by_key = reopened.evaluations_by_key()
  assert sorted(by_key) == [f"layout{w}" for w in range(threads_count)]
  for worker in range(threads_count):
    assert [r.seed for r in by_key[f"layout{worker}"]] == list(range(per_thread))


def test_reopening_sees_everything(tmp_path):
  path = tmp_path / "nested" / "run.sqlite"
  with ResultStore(path) as store:
    store.add_nodes(_nodes())
    first = store.add_evaluation("2A+2M", task="mad", metric=0.5, seed=0, seconds=3.5, compile_seconds=1.0,
                                 details={"per_task": {"recall": 0.5}}, node_id="d1", created_at=5.0)
    store.add_training_run("hybrid", "2A+2M", budget_flops=1e15, params=1_000_000, loss=3.25, tokens=20_000)
    store.set_meta("config", {"seed": 3, "tasks": ["mad", "mqar"]})
  with ResultStore(path) as store:
    assert store.nodes() == _nodes()
    assert store.evaluations() == [first]
    assert first == EvaluationRow(id=first.id, key="2A+2M", seed=0, task="mad", metric=0.5, is_buggy=False, error=None,
                                  seconds=3.5, compile_seconds=1.0, details={"per_task": {"recall": 0.5}},
                                  node_id="d1", created_at=5.0)
    assert store.get_training_run("hybrid", 1e15, 1_000_000).loss == 3.25
    assert store.get_meta("config") == {"seed": 3, "tasks": ["mad", "mqar"]}
    assert store.get_meta("absent", default="fallback") == "fallback"


def test_wal_mode_is_on(tmp_path):
  path = tmp_path / "run.sqlite"
  ResultStore(path).close()
  with sqlite3.connect(path) as conn:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
  conn.close()


def test_training_run_upsert_and_get(tmp_path):
  with ResultStore(tmp_path / "run.sqlite") as store:
    assert store.get_training_run("transformer", 1e16, 5_000_000) is None
    failed = store.add_training_run("transformer", "12A", budget_flops=1e16, params=5_000_000, loss=None,
                                    status="failed", details={"error": "OOM"})
    assert isinstance(failed, TrainingRunRow) and failed.status == "failed" and failed.loss is None
    done = store.add_training_run("transformer", "12A", budget_flops=1e16, params=5_000_000, loss=2.5,
                                  seconds=60.0, tokens=1000)
    assert (done.id, done.status, done.loss, done.details, done.tokens) == (failed.id, "done", 2.5, {}, 1000)
    store.add_training_run("transformer", "6A", budget_flops=1e16, params=2_000_000, loss=2.75)
    store.add_training_run("hybrid", "2A+4S", budget_flops=1e15, params=2_000_000, loss=3.0)
    assert store.get_training_run("transformer", 1e16, 5_000_000) == done
    assert [(r.family, r.params) for r in store.training_runs()] == [
        ("hybrid", 2_000_000), ("transformer", 2_000_000), ("transformer", 5_000_000)]
    assert len(store.training_runs("transformer")) == 2


def test_newer_schema_version_is_refused(tmp_path):
  path = tmp_path / "run.sqlite"
  ResultStore(path).close()
  with sqlite3.connect(path) as conn:
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
  conn.close()
  with pytest.raises(SchemaVersionError, match="newer"):
    ResultStore(path)
  with pytest.raises(SchemaVersionError, match="newer"):
    ResultStore(path, read_only=True)


def test_non_finite_values_are_stored_as_null(tmp_path):
  with ResultStore(tmp_path / "run.sqlite") as store:
    row = store.add_evaluation("8S", task="mqar", metric=float("nan"), seed=1, details={"loss": float("inf")})
    assert (row.metric, row.is_buggy, row.details) == (None, True, {"loss": None})
    assert "non-finite" in row.error
    kept = store.add_evaluation("8S", task="mqar", metric=float("-inf"), error="diverged at step 7")
    assert kept.error == "diverged at step 7" and kept.is_buggy
    run = store.add_training_run("ssm", "8S", budget_flops=1e14, params=10, loss=float("inf"))
    assert (run.loss, run.status) == (None, "diverged")
    store.set_meta("ratio", float("nan"))
    assert store.get_meta("ratio") is None
  with sqlite3.connect(tmp_path / "run.sqlite") as conn:
    assert conn.execute("SELECT COUNT(*) FROM evaluations WHERE metric IS NULL AND is_buggy = 1").fetchone()[0] == 2
  conn.close()


def test_evaluation_filters_and_repeated_keys(tmp_path):
  with ResultStore(tmp_path / "run.sqlite") as store:
    for seed in range(3):
      store.add_evaluation("2A+2M", task="mad", metric=0.5 + seed / 10, seed=seed)
    store.add_evaluation("4M", task="mad", metric=0.25, seed=0)
    store.add_evaluation("2A+2M", task="mqar", metric=0.9, seed=0)
    assert [r.seed for r in store.evaluations("2A+2M", task="mad")] == [0, 1, 2]
    assert len(store.evaluations("2A+2M")) == 4
    assert list(store.evaluations_by_key(task="mad")) == ["2A+2M", "4M"]
    assert list(store.evaluations_by_key(task="mad", min_count=2)) == ["2A+2M"]


def test_read_only_reader_sees_writes_and_cannot_write(tmp_path):
  path = tmp_path / "run.sqlite"
  with pytest.raises(FileNotFoundError):
    ResultStore(path, read_only=True)
  with ResultStore(path) as writer:
    reader = ResultStore(path, read_only=True)
    writer.add_evaluation("A", task="mad", metric=1.0)
    assert [r.key for r in reader.evaluations()] == ["A"]
    with pytest.raises(PermissionError):
      reader.set_meta("x", 1)
    reader.close()
