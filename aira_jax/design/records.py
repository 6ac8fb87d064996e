"""The record protocol between a sandboxed candidate's harness (child process) and the parent.

The child appends one JSON object per line to the file named by the environment variable `RECORDS_ENV`
(a path inside the candidate's working directory): `{"stage": name, "event": "start"}` before a stage and
`{"stage": name, "event": "end", "ok": bool, "seconds": float, "error": str | null, "metrics": {...}}` after
it. Each line is flushed and fsync'd, so when the child dies (timeout, memory, a crash, `os._exit`) the parent
still knows which stage was running. `read_records` parses what the child left, skipping a torn last line.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

RECORDS_ENV = "AIRA_DESIGN_RECORDS"
STAGES = ("import", "interface", "lowering", "compile", "numerics", "train", "predict", "causality", "score")
"""The stages of a design candidate, in order (a task may skip some, e.g. lowering without Pallas code);
"causality" and "score" run in the trusted parent, never in the candidate's process."""


def _clean(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {str(k): _clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_clean(v) for v in value]
  return value


def _append(record: dict[str, Any]) -> None:
  path = os.environ.get(RECORDS_ENV)
  if not path:
    return
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(_clean(record), allow_nan=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


def record_start(stage: str) -> float:
  """Marks `stage` as started; returns the start time for `record_end`."""
  _append({"stage": stage, "event": "start", "time": time.time()})
  return time.perf_counter()


def record_end(stage: str, started: float, *, ok: bool, error: str | None = None,
               metrics: dict[str, Any] | None = None) -> None:
  """Marks `stage` as finished (ok or not) with its duration, a trimmed error and metrics."""
  _append({"stage": stage, "event": "end", "ok": bool(ok), "seconds": time.perf_counter() - started,
           "error": None if error is None else str(error)[-4000:], "metrics": metrics or {}})


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records in `path` (an empty list when it does not exist); a torn or foreign line is skipped."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  records = []
  for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
    try:
      record = json.loads(line)
    except ValueError:
      continue
    if isinstance(record, dict) and isinstance(record.get("stage"), str):
      records.append(record)
  return records
