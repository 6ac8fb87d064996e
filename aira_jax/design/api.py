"""The library API of AIRA-Design: open a run, `search`, `report`.

    from aira_jax.design import api

    config, files = api.open_run(overrides=["search.task=lra-listops", "search.steps_per_agent=10"])
    result = api.search(config, files)     # DesignResult: best nodes, final metrics, ensemble report
    api.report(files.root)                 # path of report.md
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import IO

from aira_jax.cli_common import check_agent_resources, check_llm_endpoints
from aira_jax.executor.ray_cluster import check_reachable
from aira_jax.design.config import DesignConfig, from_dict, load_config
from aira_jax.design.report import write_report
from aira_jax.design.search import DesignResult, build_task, run_design, sandbox_isolation
from aira_jax.results.run_files import RunFiles, read_config, resume_run, start_run


def open_run(config: DesignConfig | None = None, *, config_path: str | None = None, overrides: Sequence[str] = (),
             resume: str | pathlib.Path | None = None) -> tuple[DesignConfig, RunFiles]:
  """A new run directory for `config` (or the YAML file plus overrides), or the run at `resume` with
  `overrides` applied. The task is built and the sandbox checked once here, so a bad task option or an
  unusable bwrap fails before anything runs (and before a new run directory exists)."""
  if resume is not None:
    config, files = resume_run(resume, from_dict, overrides)
    check_before_work(config)
  else:
    config = config if config is not None else load_config(config_path, overrides)
    check_before_work(config)
    config, files = start_run(config)
  return config, files


def check_before_work(config: DesignConfig) -> None:
  """The agents' resources (API key, scripted file), the task, the sandbox isolation (here, unless candidates
  run on Ray workers) and the executor's cluster; ConfigError."""
  check_agent_resources(config.search.agents)
  check_llm_endpoints(config.search.agents)
  build_task(config)
  if config.executor.backend == "local":
    sandbox_isolation(config)
  check_reachable(config.executor)


def search(config: DesignConfig, files: RunFiles, *, stream: IO[str] | None = None) -> DesignResult:
  """Runs (or resumes) the design search."""
  return run_design(config, files, stream=stream)


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
  """Rewrites `run_dir/report.md` from the run's files; returns its path."""
  return write_report(read_config(run_dir, from_dict), RunFiles(pathlib.Path(run_dir)))
