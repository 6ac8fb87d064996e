"""The evaluator of AIRA-Design: runs one candidate through the sandbox and lets the trusted scorer score it.

`CandidateEvaluator(task, limits, isolation=...)(code)` prepares the task's data once (the task's
`TrustedScorer`: training data and evaluation inputs on disk for the sandbox, held-out labels in this
process), then for each candidate makes a working directory with the candidate's file and the harness's
`settings.json` and lets the scorer run its phases, each in a fresh working directory (`run_sandboxed` with the
chosen isolation; what one phase passes to the next goes through the scorer, never through shared files). The
scorer reads the stage records (reports), reads the predictions from the results channel and computes the
metrics itself, so the result is:
- every stage ended ok and the trusted "score" stage computed the task's metric: a scored `EvalResult`;
- a stage ended not ok: a buggy result "stage <name> failed: <error>" (a trusted stage such as "causality"
  fails the same way);
- the process died inside a stage (timeout, memory, a signal, os._exit): "killed (<why>) during stage <name>"
  or "exited with code N during stage <name>".
Known secret values are redacted from everything the candidate printed or recorded (`aira_jax.design.redact`)
before it is kept. Each candidate's file, stdout, stderr, stage records and result are copied to
`candidates/<key>/` in the run directory (key = the first 12 hex digits of the code's SHA-256).

Whose fault (aira_jax.faults): the candidate's faults are failed stages; an exception escaping the evaluator
(the harness, the scorer, the sandbox's setup) is the evaluator's own, raised as InfrastructureError, and
Ctrl-C kills a running candidate (`Interrupted`); neither is recorded for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

from aira_jax.agents.evaluation import EvalResult
from aira_jax.design.redact import redact_outcome, secret_values
from aira_jax.design.sandbox import SandboxLimits, SandboxOutcome, resolve_isolation, run_sandboxed
from aira_jax.design.scoring import Phase, TrustedScorer
from aira_jax.design.tasks.base import DesignTask
from aira_jax.faults import InfrastructureError


@dataclasses.dataclass(frozen=True)
class CandidateResult:
  """What became of one candidate: per-stage records (the harness's reports and the trusted stages), the
  trusted metrics, what the candidate's process reported about itself, the failure (stage and message) if any,
  and the last phase's process outcome."""

  key: str
  stages: dict[str, dict[str, Any]]
  metrics: dict[str, Any]
  failed_stage: str | None
  error: str | None
  seconds: float
  killed: str | None
  returncode: int
  reported: dict[str, Any] = dataclasses.field(default_factory=dict)
  isolation: str = "process"


def code_key(code: str) -> str:
  """The de-duplication key of a candidate: the first 12 hex digits of the SHA-256 of its text."""
  return hashlib.sha256(code.encode("utf-8")).hexdigest()[:12]


class CandidateEvaluator:
  """Scores candidate files of `task` in the sandbox (module docstring).

  Args:
    task: the design task.
    limits: the sandbox limits (timeout defaults to the task's).
    isolation: "auto" | "bwrap" | "process" (`aira_jax.design.sandbox.resolve_isolation`; resolved here, once).
    candidates_dir: where each candidate's files and logs are kept (None: not kept).
    on_result: called with every CandidateResult (the store records them).
    keep_workdirs: keep each phase's working directory (their paths are in `candidates/<key>/workdir.txt`).
    block_processes: see `run_sandboxed` (None: automatic).
  """

  def __init__(self, task: DesignTask, limits: SandboxLimits, *, isolation: str = "auto",
               candidates_dir: pathlib.Path | None = None,
               on_result: Callable[[CandidateResult], None] | None = None, keep_workdirs: bool = False,
               block_processes: bool | None = None):
    self.task, self.limits, self.candidates_dir = task, limits, candidates_dir
    self.on_result, self.keep_workdirs, self.block_processes = on_result, keep_workdirs, block_processes
    self.isolation = resolve_isolation(isolation)
    self.done = 0  # candidates run in the sandbox by this evaluator
    self._scorer: TrustedScorer | None = None
    self._data_root: str | None = None

  def where(self) -> str:
    """Where candidates run, for the report."""
    return "this machine"

  @property
  def scorer(self) -> TrustedScorer:
    """The task's trusted scorer, its data prepared on first use."""
    if self._scorer is None:
      scorer = self.task.make_scorer()
      self._data_root = tempfile.mkdtemp(prefix="aira-data-")
      # Removed by close(), or when this evaluator is collected / the interpreter exits if nobody calls it.
      self._cleanup = weakref.finalize(self, shutil.rmtree, self._data_root, ignore_errors=True)
      scorer.prepare(pathlib.Path(self._data_root))
      self._scorer = scorer
    return self._scorer

  def close(self) -> None:
    """Removes the prepared data (a later candidate prepares it again)."""
    if self._data_root is not None:
      self._cleanup()
    self._scorer = self._data_root = None

  def _kept_files(self, code: str, outcomes: list[SandboxOutcome], result: CandidateResult,
                  workdirs: list[pathlib.Path]) -> dict[str, str]:
    """What `candidates/<key>/` keeps of a candidate: its file, stdout, stderr, stage records, result."""
    sep = "\n" if len(outcomes) > 1 else ""
    files = {self.task.filename: code, "stdout.txt": sep.join(o.stdout for o in outcomes),
             "stderr.txt": sep.join(o.stderr for o in outcomes),
             "records.jsonl": "".join(json.dumps(r) + "\n" for o in outcomes for r in o.records),
             "result.json": json.dumps(dataclasses.asdict(result), indent=1, default=str)}
    if self.keep_workdirs:
      files["workdir.txt"] = "".join(f"{w}\n" for w in workdirs)
    return files

  def run(self, code: str) -> CandidateResult:
    """Runs `code` through every phase in the sandbox, scores it on the trusted side, keeps its files in
    `candidates/<key>/` and reports it to `on_result`."""
    result, files = self.score(code)
    if self.candidates_dir is not None:
      folder = self.candidates_dir / result.key
      folder.mkdir(parents=True, exist_ok=True)
      for name, text in files.items():
        (folder / name).write_text(text)
    self.done += 1
    if self.on_result is not None:
      self.on_result(result)
    return result

  def score(self, code: str) -> tuple[CandidateResult, dict[str, str]]:
    """Runs `code` through every phase in the sandbox and scores it on the trusted side: its result and the
    files to keep (aira_jax.design.remote runs this on a Ray worker)."""
    key, scorer = code_key(code), self.scorer
    files = {self.task.filename: code, "settings.json": json.dumps(dict(scorer.harness_settings()))}
    secrets = secret_values()
    outcomes: list[SandboxOutcome] = []
    workdirs: list[pathlib.Path] = []

    def run_phase(phase: Phase) -> SandboxOutcome:
      workdirs.append(pathlib.Path(tempfile.mkdtemp(prefix="aira-sandbox-")))  # fresh: phases share no files
      limits = self.limits if phase.timeout_s is None else dataclasses.replace(self.limits,
                                                                                timeout_s=phase.timeout_s)
      outcome = run_sandboxed(self.task.harness_module, list(phase.args), files=files, limits=limits,
                              workdir=workdirs[-1], isolation=self.isolation,
                              data_dirs=(self._data_root, *phase.data_dirs), hidden=scorer.hidden_paths(),
                              block_processes=self.block_processes, consume=phase.consume)
      outcome = redact_outcome(outcome, secrets)
      outcomes.append(outcome)
      return outcome

    try:
      verdict = scorer.score(run_phase)
    finally:
      if not self.keep_workdirs:
        for workdir in workdirs:
          shutil.rmtree(workdir, ignore_errors=True)
    if not verdict.failed and self.task.metric not in verdict.metrics:
      verdict.fail("score", f"stage score computed no {self.task.metric!r} (got {sorted(verdict.metrics)})")
    last = outcomes[-1] if outcomes else None
    result = CandidateResult(key=key, stages=verdict.stages, metrics=verdict.metrics if not verdict.failed else {},
                             failed_stage=verdict.failed_stage, error=verdict.error,
                             seconds=sum(o.seconds for o in outcomes), killed=last.killed if last else None,
                             returncode=last.returncode if last else 0,
                             reported={k: v for k, v in verdict.reported.items() if k not in verdict.metrics
                                       and k != self.task.metric and k != self.task.final_metric},
                             isolation=self.isolation)
    return result, self._kept_files(code, outcomes, result, workdirs)

  def __call__(self, code: str) -> EvalResult:
    """The `EvaluationQueue` interface: payload = the file's source. InfrastructureError when the evaluator
    itself fails (module docstring)."""
    try:
      result = self.run(code)
    except Exception as e:  # noqa: BLE001  (a candidate's faults are failed stages, not exceptions)
      raise InfrastructureError(f"the design evaluator failed on candidate {code_key(code)}: "
                                f"{type(e).__name__}: {e}") from e
    lines = [f"candidate {result.key}: " + ", ".join(
        f"{name} {'ok' if s['ok'] else ('FAILED' if s['ok'] is False else 'did not finish')}"
        for name, s in result.stages.items())]
    for title, values in (("metrics", result.metrics), ("reported by the candidate's process", result.reported)):
      if values:
        lines.append(f"{title}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in values.items()))
    if result.error:
      lines.append(result.error)
    metric = result.metrics.get(self.task.metric) if result.failed_stage is None else None
    return EvalResult(metric=metric, is_buggy=result.failed_stage is not None, error=result.error,
                      output="\n".join(lines), seconds=result.seconds)
