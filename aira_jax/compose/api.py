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

from aira_jax.cli_common import check_agent_resources, check_llm_endpoints
from aira_jax.compose.config import ComposeConfig, ConfigError, from_dict, load_config
from aira_jax.compose.report import write_report
from aira_jax.results.run_files import RunFiles, read_config, resume_run, start_run
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.executor.ray_cluster import check_reachable
from aira_jax.layers.kernels import check_runs_here
from aira_jax.compose.scale import ScaleResult, run_scale, scale_task, width_config
from aira_jax.compose.search import SearchResult, run_search
from aira_jax.models.presets import preset_config
from aira_jax.results.store import ResultStore


def open_run(config: ComposeConfig | None = None, *, config_path: str | None = None, overrides: Sequence[str] = (),
             resume: str | pathlib.Path | None = None, check_scale: bool = False) -> tuple[ComposeConfig, RunFiles]:
  """A new run directory for `config` (or the YAML file plus overrides), or the run at `resume` with
  `overrides` applied. Raises ConfigError for a bad config or an occupied / missing directory; the evaluator
  (and with `check_scale` the scale stage's task and widths) is built first, so a bad model, task option,
  missing corpus or width fails before a new directory is made."""
  if resume is not None:
    config, files = resume_run(resume, from_dict, overrides)
    check_before_work(config, check_scale=check_scale)
    return config, files
  if config is None:
    config = load_config(config_path, overrides)
  check_before_work(config, check_scale=check_scale)
  return start_run(config)


def check_before_work(config: ComposeConfig, *, check_scale: bool = False) -> None:
  """What `load_config` cannot check without building things: the agents' resources (API key, scripted
  file), the evaluator (model preset and overrides, task options), on the local executor whether this backend runs
  the model's kernel impls, the executor's Ray cluster (reachable, Ray installed), and with `check_scale` the scale
  task and a model at every width; ConfigError."""
  check_agent_resources(config.search.agents)
  check_llm_endpoints(config.search.agents)
  evaluator = LayoutEvaluator(config.evaluator, space=config.search.space, depth=config.search.depth)  # no program
  if config.executor.backend == "local":  # Ray workers may hold other devices than this driver
    try:
      check_runs_here(evaluator.base_config)
    except ValueError as e:
      raise ConfigError(f"evaluator.model: {e}") from None
  check_reachable(config.executor)
  if check_scale:
    check_scale_task(config)


def search(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> SearchResult:
  """Stage 1 (resumes whatever `files` already holds)."""
  return run_search(config, files, stream=stream)


def scale(config: ComposeConfig, files: RunFiles, *, stream: IO[str] | None = None) -> ScaleResult:
  """Stage 2 on the run's search results (resumes finished training runs)."""
  return run_scale(config, files, stream=stream)


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
  """Rewrites `run_dir/report.md` and its plots from the run's files; returns the report's path."""
  return write_report(read_config(run_dir, from_dict), RunFiles(pathlib.Path(run_dir)))


def mark_interrupted(run_dir: str | pathlib.Path, stage: str | None) -> None:
  """Records that Ctrl-C stopped `stage` of the run (its report says so), or with None that nothing did."""
  with ResultStore(RunFiles(pathlib.Path(run_dir)).store) as store:
    store.set_meta("interrupted", stage)


def check_scale_task(config: ComposeConfig) -> None:
  """Builds the scale stage's task and its model at every width once, so a missing corpus or a width that
  does not split into heads raises ConfigError before any training."""
  scale, evaluator = config.scale, config.evaluator
  task = scale_task(config)
  base = preset_config(evaluator.preset, **dict(evaluator.model))
  for width in scale.widths:
    width_config(base, width, task.spec.vocab_size, scale.seq_len, head_dim=scale.head_dim,
                 ffn_ratio=scale.ffn_ratio)
