"""The evaluator of AIRA-Design: runs one candidate file through the sandbox and turns the stages into a result.

`CandidateEvaluator(task, ...)(code)` writes the code as the task's file next to `settings.json`, runs the
task's harness in the sandbox (`aira_jax.design.sandbox.run_sandboxed`), and reads the stage records back:
- every stage ended ok and the score stage reported the task's metric: a scored `EvalResult`;
- a stage ended not ok: a buggy result "stage <name> failed: <error>";
- the process died inside a stage (timeout, memory, a signal, os._exit): "killed (<why>) during stage <name>"
  or "exited with code N during stage <name>".
Each candidate's file, stdout, stderr, stage records and outcome are copied to `candidates/<key>/` in the run
directory (key = the first 12 hex digits of the code's SHA-256), so nothing a candidate did is lost even when
its temporary directory is removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

from aira_jax.agents.evaluation import EvalResult
from aira_jax.design.sandbox import SandboxLimits, SandboxOutcome, run_sandboxed
from aira_jax.design.tasks.base import DesignTask


@dataclasses.dataclass(frozen=True)
class CandidateResult:
  """What the sandbox made of one candidate: per-stage (ok, seconds), the metrics of the score stage, the
  failure (stage and message) if any, and the process outcome."""

  key: str
  stages: dict[str, dict[str, Any]]
  metrics: dict[str, Any]
  failed_stage: str | None
  error: str | None
  seconds: float
  killed: str | None
  returncode: int


def code_key(code: str) -> str:
  """The de-duplication key of a candidate: the first 12 hex digits of the SHA-256 of its text."""
  return hashlib.sha256(code.encode("utf-8")).hexdigest()[:12]


def summarize_outcome(key: str, outcome: SandboxOutcome, metric: str) -> CandidateResult:
  """Stages, metrics and the failure of a finished sandbox run (module docstring)."""
  stages: dict[str, dict[str, Any]] = {}
  running = None
  for record in outcome.records:
    stage = record["stage"]
    if record.get("event") == "start":
      stages[stage] = {"ok": None}
      running = stage
    elif record.get("event") == "end":
      stages[stage] = {"ok": bool(record.get("ok")), "seconds": record.get("seconds"),
                       "error": record.get("error"), "metrics": record.get("metrics") or {}}
      running = None if running == stage else running
  failed = next((name for name, s in stages.items() if s["ok"] is False), None)
  error = None
  if failed is not None:
    error = f"stage {failed} failed: {stages[failed]['error'] or 'no error recorded'}"
  elif running is not None or outcome.killed or outcome.returncode != 0:
    failed = running or "startup"
    why = f"killed ({outcome.killed})" if outcome.killed else f"exited with code {outcome.returncode}"
    error = f"{why} during stage {failed}"
  metrics = stages.get("score", {}).get("metrics", {}) if failed is None else {}
  if failed is None and metric not in metrics:
    failed, error = "score", f"stage score reported no {metric!r} (got {sorted(metrics)})"
  return CandidateResult(key=key, stages=stages, metrics=metrics, failed_stage=failed, error=error,
                         seconds=outcome.seconds, killed=outcome.killed, returncode=outcome.returncode)


class CandidateEvaluator:
  """Scores candidate files of `task` in the sandbox (module docstring).

  Args:
    task: the design task.
    limits: the sandbox limits (timeout defaults to the task's).
    candidates_dir: where each candidate's files and logs are kept (None: not kept).
    on_result: called with every CandidateResult (the store records them).
  """

  def __init__(self, task: DesignTask, limits: SandboxLimits, *, candidates_dir: pathlib.Path | None = None,
               on_result: Callable[[CandidateResult], None] | None = None, keep_workdirs: bool = False):
    self.task, self.limits, self.candidates_dir = task, limits, candidates_dir
    self.on_result, self.keep_workdirs = on_result, keep_workdirs
    self.done = 0  # candidates run in the sandbox by this evaluator

  def _keep(self, key: str, code: str, outcome: SandboxOutcome, result: CandidateResult) -> None:
    if self.candidates_dir is None:
      return
    folder = self.candidates_dir / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / self.task.filename).write_text(code)
    (folder / "stdout.txt").write_text(outcome.stdout)
    (folder / "stderr.txt").write_text(outcome.stderr)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in outcome.records))
    (folder / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))

  def run(self, code: str) -> CandidateResult:
    """Runs `code` through every stage in the sandbox."""
    key = code_key(code)
    files = {self.task.filename: code, "settings.json": json.dumps(dict(self.task.settings))}
    outcome = run_sandboxed(self.task.harness_module, ["settings.json"], files=files, limits=self.limits,
                            keep_workdir=self.keep_workdirs)
    result = summarize_outcome(key, outcome, self.task.metric)
    self._keep(key, code, outcome, result)
    self.done += 1
    if self.on_result is not None:
      self.on_result(result)
    return result

  def __call__(self, code: str) -> EvalResult:
    """The `EvaluationQueue` interface: payload = the file's source."""
    result = self.run(code)
    lines = [f"candidate {result.key}: " + ", ".join(
        f"{name} {'ok' if s['ok'] else ('FAILED' if s['ok'] is False else 'did not finish')}"
        for name, s in result.stages.items())]
    if result.metrics:
      lines.append("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in result.metrics.items()))
    if result.error:
      lines.append(result.error)
    metric = result.metrics.get(self.task.metric) if result.failed_stage is None else None
    return EvalResult(metric=metric, is_buggy=result.failed_stage is not None, error=result.error,
                      output="\n".join(lines), seconds=result.seconds)

