"""The files of a run (compose or design), all under `runs/<id>/`, and starting or resuming one.

    resolved_config.yaml   the full config the run used (a resumed run reads it back)
    journal.jsonl          every search node, append-only (aira_jax.agents.Journal)
    results.sqlite         evaluations, nodes, training runs, run facts (the source of truth)
    candidates/            design only: each candidate's code, logs and stage records
    llm_calls.jsonl        every LLM request and reply, when an LLM agent is configured
    report.md, *.png       the report and its plots (rewritten by `report`)
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from aira_jax.config_io import ConfigError, apply_overrides

CONFIG_FILE = "resolved_config.yaml"
JOURNAL_FILE = "journal.jsonl"
STORE_FILE = "results.sqlite"
LLM_LOG_FILE = "llm_calls.jsonl"
REPORT_FILE = "report.md"


@dataclasses.dataclass(frozen=True)
class RunFiles:
  """Paths of one run directory."""

  root: pathlib.Path

  @property
  def config(self) -> pathlib.Path:
    return self.root / CONFIG_FILE

  @property
  def journal(self) -> pathlib.Path:
    return self.root / JOURNAL_FILE

  @property
  def store(self) -> pathlib.Path:
    return self.root / STORE_FILE

  @property
  def llm_log(self) -> pathlib.Path:
    return self.root / LLM_LOG_FILE

  @property
  def report(self) -> pathlib.Path:
    return self.root / REPORT_FILE

  @property
  def candidates(self) -> pathlib.Path:
    return self.root / "candidates"


def new_run_id() -> str:
  """A sortable id from the local time, e.g. "20261127-031502"."""
  return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_config(files: RunFiles, config) -> None:
  """Saves the run's resolved config (a dataclass with `to_dict`)."""
  files.root.mkdir(parents=True, exist_ok=True)
  files.config.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def read_config(run_dir: str | pathlib.Path, from_dict: Callable[[Mapping[str, Any]], Any],
                overrides: Sequence[str] = ()):
  """The config a run was started with, with `overrides` applied (e.g. a larger step budget)."""
  path = pathlib.Path(run_dir) / CONFIG_FILE
  if not path.is_file():
    raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); start a run without --resume")
  values = yaml.safe_load(path.read_text()) or {}
  return from_dict(apply_overrides(values, overrides))


def start_run(config):
  """A fresh run directory for `config` (a dataclass with run_dir / run_id; run_id filled in); ConfigError if
  the directory already holds a run."""
  run_id = config.run_id or new_run_id()
  config = dataclasses.replace(config, run_id=run_id)
  files = RunFiles(pathlib.Path(config.run_dir) / run_id)
  if files.config.exists():
    raise ConfigError(f"{files.root} already holds a run; resume it with --resume {files.root} or choose "
                      "another run_id")
  write_config(files, config)
  return config, files


def resume_run(run_dir: str | pathlib.Path, from_dict: Callable[[Mapping[str, Any]], Any],
               overrides: Sequence[str] = ()):
  """The run in `run_dir` with `overrides` applied and saved (so the next resume sees them too)."""
  config = read_config(run_dir, from_dict, overrides)
  files = RunFiles(pathlib.Path(run_dir))
  write_config(files, config)
  return config, files
