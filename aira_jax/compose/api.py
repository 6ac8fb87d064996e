"""The library API of AIRA-Compose: open a run, `search`, `scale`, `report`, each returning a typed result.

    from aira_jax.compose import api
    from aira_jax.compose.config import load_config

    config, files = api.open_run(config_path=None, overrides=["search.depth=8"])
    found = api.search(config, files)        # SearchResult: best nodes, race standings, noise floor
    study = api.scale(config, files)         # ScaleResult: aggregation, families, isoFLOP fits, comparisons
    api.report(files.root)                   # path of report.md
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import IO

from aira_jax.cli_common import check_agent_resources
from aira_jax.compose.config import ComposeConfig, from_dict, load_config
from aira_jax.compose.report import write_report
from aira_jax.results.run_files import RunFiles, read_config, resume_run, start_run
from aira_jax.compose.scale import ScaleResult, run_scale, scale_task
from aira_jax.compose.search import SearchResult, run_search


def open_run(config: ComposeConfig | None = None, *, config_path: str | None = None, overrides: Sequence[str] = (),
             resume: str | pathlib.Path | None = None) -> tuple[ComposeConfig, RunFiles]:
  """A new run directory for `config` (or the YAML file plus overrides), or the run at `resume` with
  `overrides` applied. Raises ConfigError for a bad config or an occupied / missing directory."""
  if resume is not None:
    config, files = resume_run(resume, from_dict, overrides)
    check_agent_resources(config.search.agents)
    return config, files
  if config is None:
    config = load_config(config_path, overrides)
  check_agent_resources(config.search.agents)
  return start_run(config)


def search(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> SearchResult:
  """Stage 1 (resumes whatever `files` already holds)."""
  return run_search(config, files, stream=stream)


def scale(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> ScaleResult:
  """Stage 2 on the run's search results (resumes finished training runs)."""
  return run_scale(config, files, stream=stream)


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
  """Rewrites `run_dir/report.md` and its plots from the run's files; returns the report's path."""
  return write_report(read_config(run_dir, from_dict), RunFiles(pathlib.Path(run_dir)))


def check_scale_task(config: ComposeConfig) -> None:
  """Builds the scale stage's task once, so a missing corpus raises ConfigError before any training."""
  scale_task(config)
