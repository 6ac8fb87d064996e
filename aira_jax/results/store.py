"""`ResultStore`: the SQLite database that is the source of truth of a run (`runs/<id>/results.sqlite`).

One writer, WAL: every write goes through one connection guarded by a lock, so agent threads may write
concurrently; readers (a report, a notebook, another process) may open their own `read_only=True` store while
the run goes on. The JSONL journal stays the crash-proof log of nodes; the store mirrors it
(`sync_from_journal`) next to what the journal does not hold.

Tables (schema version `SCHEMA_VERSION`, kept in `schema_version`; a newer one is refused):
  nodes          one row per journal `Node`, keyed by id; JSON columns parent_ids and timings.
  evaluations    one row per evaluation actually run, of a key (e.g. canonical layout text) with a seed on a task;
                 repeated seeds of one key measure noise (`evaluations_by_key`).
  training_runs  one row per scale-stage run, unique on (family, budget_flops, params) so a resumed stage
                 finds finished runs (`get_training_run`) and a rerun replaces its row (`add_training_run`).
  meta           run-level facts (config, stage status) as key -> JSON value.

Non-finite metrics and losses are stored as NULL (an evaluation is then buggy, a training run "diverged");
JSON columns are strict JSON, with non-finite floats inside them written as null.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from aira_jax.agents.node import Node

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
  id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, operator TEXT NOT NULL, parent_ids TEXT NOT NULL,
  plan TEXT NOT NULL, payload TEXT NOT NULL, metric REAL, is_buggy INTEGER NOT NULL, error TEXT,
  output_excerpt TEXT NOT NULL, tokens INTEGER NOT NULL, timings TEXT NOT NULL, created_at REAL NOT NULL,
  lower_is_better INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, seed INTEGER, task TEXT NOT NULL, metric REAL,
  is_buggy INTEGER NOT NULL, error TEXT, seconds REAL, compile_seconds REAL, details TEXT NOT NULL,
  node_id TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS evaluations_by_key ON evaluations (key);
CREATE TABLE IF NOT EXISTS training_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, family TEXT NOT NULL, layout TEXT NOT NULL, budget_flops REAL NOT NULL,
  params INTEGER NOT NULL, tokens INTEGER, loss REAL, status TEXT NOT NULL, seconds REAL, details TEXT NOT NULL,
  created_at REAL NOT NULL, UNIQUE (family, budget_flops, params));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SchemaVersionError(RuntimeError):
  """The database was written by a newer aira_jax than this one."""


@dataclasses.dataclass(frozen=True)
class EvaluationRow:
  """One evaluation: `key` scored `metric` on `task` with `seed` (metric None when buggy or non-finite)."""
  id: int
  key: str
  seed: int | None
  task: str
  metric: float | None
  is_buggy: bool
  error: str | None
  seconds: float | None
  compile_seconds: float | None
  details: dict[str, Any]
  node_id: str | None
  created_at: float


@dataclasses.dataclass(frozen=True)
class TrainingRunRow:
  """One scale-stage run of `family` (layout text `layout`) with `params` parameters at `budget_flops`."""
  id: int
  family: str
  layout: str
  budget_flops: float
  params: int
  tokens: int | None
  loss: float | None
  status: str
  seconds: float | None
  details: dict[str, Any]
  created_at: float


_NODE_COLUMNS = tuple(field.name for field in dataclasses.fields(Node))


def _node_from_row(row: sqlite3.Row) -> Node:
  record = dict(row)
  record.update(parent_ids=json.loads(record["parent_ids"]), timings=json.loads(record["timings"]),
                is_buggy=bool(record["is_buggy"]), lower_is_better=bool(record["lower_is_better"]))
  return Node.from_dict(record)


def _from_row(row_type: type, row: sqlite3.Row) -> Any:
  values = dict(row)
  values["details"] = json.loads(values["details"])
  if "is_buggy" in values:
    values["is_buggy"] = bool(values["is_buggy"])
  return row_type(**values)


def _finite_or_none(value: float | None) -> float | None:
  if value is None:
    return None
  value = float(value)
  return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
  """`value` with non-finite floats as None, tuples as lists and numpy scalars as Python numbers."""
  if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
    value = value.item()
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


def _to_json(value: Any) -> str:
  return json.dumps(_jsonable(value), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class ResultStore:
  """The run's SQLite database. Thread-safe; use as a context manager or call `close()`."""

  def __init__(self, path: str | os.PathLike, *, read_only: bool = False):
    """Opens (creating unless `read_only`) the database at `path`.

    Raises SchemaVersionError if the file holds a newer schema, FileNotFoundError if `read_only` and absent.
    """
    self.path = pathlib.Path(path)
    self.read_only = read_only
    self._lock = threading.Lock()
    if read_only and not self.path.exists():
      raise FileNotFoundError(f"no results database at {self.path}")
    if not read_only:
      self.path.parent.mkdir(parents=True, exist_ok=True)
    target = f"{self.path.resolve().as_uri()}?mode=ro" if read_only else str(self.path)
    self._conn = sqlite3.connect(target, uri=read_only, timeout=30.0, check_same_thread=False, isolation_level=None)
    self._conn.row_factory = sqlite3.Row
    try:
      self._check_version_and_create()
    except BaseException:
      self._conn.close()
      raise

  def _check_version_and_create(self) -> None:
    if not self.read_only:
      self._conn.execute("PRAGMA journal_mode=WAL")
      self._conn.execute("PRAGMA synchronous=NORMAL")
    has_table = self._conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    found = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if has_table else None
    if found is not None and found > SCHEMA_VERSION:
      raise SchemaVersionError(f"{self.path} has results schema version {found}, newer than this aira_jax "
                               f"understands ({SCHEMA_VERSION}); upgrade aira_jax to read it")
    if self.read_only:
      if found is None:
        raise SchemaVersionError(f"{self.path} is not an aira_jax results database (no schema_version)")
      return
    with self._write() as conn:
      for statement in _SCHEMA.split(";"):
        if statement.strip():
          conn.execute(statement)
      if found is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

  @contextlib.contextmanager
  def _write(self) -> Iterator[sqlite3.Connection]:
    """The writer connection inside one immediate transaction, under the lock; rolls back on error."""
    if self.read_only:
      raise PermissionError(f"{self.path} was opened read-only")
    with self._lock:
      self._conn.execute("BEGIN IMMEDIATE")
      try:
        yield self._conn
      except BaseException:
        self._conn.execute("ROLLBACK")
        raise
      self._conn.execute("COMMIT")

  def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    with self._lock:
      return self._conn.execute(sql, tuple(params)).fetchall()

  def _select(self, row_type: type, table: str, order: str, **where: Any) -> list[Any]:
    """Rows of `table` as `row_type`, where each non-None keyword equals its column."""
    where = {column: value for column, value in where.items() if value is not None}
    sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(f"{c} = ?" for c in where) if where else "")
    return [_from_row(row_type, r) for r in self._read(f"{sql} ORDER BY {order}", where.values())]

  def close(self) -> None:
    """Closes the connection (idempotent)."""
    with self._lock:
      self._conn.close()

  def __enter__(self) -> ResultStore:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  # Nodes.

  def add_node(self, node: Node) -> bool:
    """Records `node` unless its id is already there (so re-adding on resume is harmless); True if added."""
    return self.add_nodes([node]) == 1

  def add_nodes(self, nodes: Iterable[Node]) -> int:
    """Records the nodes whose ids are not there yet, in one transaction; returns how many were added."""
    with self._write() as conn:
      before = conn.total_changes
      conn.executemany(f"INSERT OR IGNORE INTO nodes ({', '.join(_NODE_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in _NODE_COLUMNS)})",
                       [{**n.to_dict(), "parent_ids": _to_json(n.parent_ids), "timings": _to_json(n.timings)}
                        for n in nodes])
      return conn.total_changes - before

  def sync_from_journal(self, journal: Iterable[Node]) -> int:
    """Adds the journal's nodes the store lacks (a `Journal` or any iterable of nodes); returns the count."""
    return self.add_nodes(journal)

  def nodes(self) -> list[Node]:
    """Every recorded node, in the order it was first added."""
    return [_node_from_row(r) for r in self._read("SELECT * FROM nodes ORDER BY rowid")]

  # Evaluations.

  def add_evaluation(self, key: str, *, task: str, metric: float | None, seed: int | None = None,
                     is_buggy: bool = False, error: str | None = None, seconds: float | None = None,
                     compile_seconds: float | None = None, details: dict[str, Any] | None = None,
                     node_id: str | None = None, created_at: float | None = None) -> EvaluationRow:
    """Records one evaluation of `key` and returns its row.

    A non-finite `metric` is stored as None and marks the evaluation buggy (error says so unless given).
    """
    stored_metric = _finite_or_none(metric)
    if metric is not None and stored_metric is None:
      is_buggy = True
      error = error or f"non-finite metric {float(metric)!r}"
    values = (key, seed, task, stored_metric, int(is_buggy), error, _finite_or_none(seconds),
              _finite_or_none(compile_seconds), _to_json(details or {}), node_id,
              time.time() if created_at is None else float(created_at))
    with self._write() as conn:
      row_id = conn.execute("INSERT INTO evaluations (key, seed, task, metric, is_buggy, error, seconds, "
                            "compile_seconds, details, node_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            values).lastrowid
    return self._select(EvaluationRow, "evaluations", "id", id=row_id)[0]

  def evaluations(self, key: str | None = None, *, task: str | None = None) -> list[EvaluationRow]:
    """Evaluations in the order they were recorded, optionally only those of one key and/or task."""
    return self._select(EvaluationRow, "evaluations", "id", key=key, task=task)

  def evaluations_by_key(self, *, task: str | None = None, min_count: int = 1) -> dict[str, list[EvaluationRow]]:
    """key -> its evaluations (recorded order), keys in order of first evaluation.

    With `min_count=2`, only keys evaluated more than once: repeated seeds of one layout measure noise.
    """
    grouped: dict[str, list[EvaluationRow]] = {}
    for row in self.evaluations(task=task):
      grouped.setdefault(row.key, []).append(row)
    return {k: rows for k, rows in grouped.items() if len(rows) >= min_count}

  # Training runs.

  def add_training_run(self, family: str, layout: str, *, budget_flops: float, params: int, loss: float | None,
                       status: str = "done", tokens: int | None = None, seconds: float | None = None,
                       details: dict[str, Any] | None = None) -> TrainingRunRow:
    """Records (or replaces) the run of `family` at (`budget_flops`, `params`); returns the stored row.

    A non-finite `loss` is stored as None with status "diverged" (when the given status was "done").
    """
    stored_loss = _finite_or_none(loss)
    if loss is not None and stored_loss is None and status == "done":
      status = "diverged"
    values = (family, layout, float(budget_flops), int(params), tokens, stored_loss, status,
              _finite_or_none(seconds), _to_json(details or {}), time.time())
    with self._write() as conn:
      conn.execute(
          "INSERT INTO training_runs (family, layout, budget_flops, params, tokens, loss, status, seconds, details, "
          "created_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (family, budget_flops, params) DO UPDATE SET "
          "layout=excluded.layout, tokens=excluded.tokens, loss=excluded.loss, status=excluded.status, "
          "seconds=excluded.seconds, details=excluded.details, created_at=excluded.created_at", values)
    return self.get_training_run(family, budget_flops, params)

  def get_training_run(self, family: str, budget_flops: float, params: int) -> TrainingRunRow | None:
    """The recorded run of `family` at (`budget_flops`, `params`), or None if it has not run."""
    rows = self._select(TrainingRunRow, "training_runs", "id", family=family, budget_flops=float(budget_flops),
                        params=int(params))
    return rows[0] if rows else None

  def drop_training_runs(self, family: str, *, unless_layout: str) -> int:
    """Deletes `family`'s runs of any layout other than `unless_layout` (the family now names another
    layout, e.g. a search resumed with more steps aggregated differently); returns how many went."""
    with self._write() as conn:
      return conn.execute("DELETE FROM training_runs WHERE family = ? AND layout != ?",
                          (family, unless_layout)).rowcount

  def training_runs(self, family: str | None = None) -> list[TrainingRunRow]:
    """Training runs (optionally of one family), ordered by family, budget, then parameter count."""
    return self._select(TrainingRunRow, "training_runs", "family, budget_flops, params", family=family)

  # Run-level facts.

  def set_meta(self, key: str, value: Any) -> None:
    """Stores a JSON-ready `value` under `key`, replacing any earlier one."""
    text = _to_json(value)
    with self._write() as conn:
      conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

  def get_meta(self, key: str, default: Any = None) -> Any:
    """The value stored under `key`, or `default`."""
    rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
    return json.loads(rows[0]["value"]) if rows else default
