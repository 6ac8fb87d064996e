"""The configuration of a design run: frozen dataclasses, read from YAML with dotted overrides (config_io.py).

`DesignConfig` has the search (task, agents, budgets), the sandbox limits and the run's own fields. The
defaults are the offline CPU run of `python -m aira_jax.design`: the built-in agents vary the seed mechanisms
of the tiny LRA ListOps task; `experiments/design/*.yaml` name bigger studies and LLM agents. Settings with
fixed choices (policy, edits, sandbox.isolation) are `Literal` types, checked by config_io and listed by --help.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aira_jax.cli_common import PolicyName
from aira_jax.executor import ExecutorConfig, check_executor
from aira_jax.config_io import ConfigError, check_types, from_mapping, load_dataclass, to_plain

__all__ = ["ConfigError", "DesignAgentConfig", "DesignConfig", "DesignSearchConfig", "SandboxConfig", "from_dict",
           "load_config", "validate"]


@dataclasses.dataclass(frozen=True)
class DesignAgentConfig:
  """One agent: a policy and who writes its code (`llm` None = the built-in agent, which varies the seed
  mechanisms' configuration; else an LLM spec such as "gemini:gemini-2.5-pro" or "scripted:replies.jsonl").
  `edits`: "whole" (the model rewrites the file) or "diff" (SEARCH/REPLACE edits of the parent's file).
  `policy_options`: the policy's settings, e.g. {num_drafts: 2, debug_prob: 1.0} for greedy. `llm_options`: the
  LLM client's settings (aira_jax.llm.registry.LLM_OPTIONS), e.g. {timeout_s: 60, max_attempts: 3, base_url:
  "https://proxy/v1", headers: {X-Org: lab}} (headers: OpenAI-compatible servers only)."""

  name: str
  policy: PolicyName = "greedy"
  llm: str | None = None
  policy_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  edits: Literal["whole", "diff"] = "whole"
  llm_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_text(cls, text: str) -> DesignAgentConfig:
    """"greedy" is short for {name: greedy, policy: greedy}."""
    return cls(name=text, policy=text)


@dataclasses.dataclass(frozen=True)
class DesignSearchConfig:
  """The search: `task` (see aira_jax.design.tasks) built with `task_options` (a plain mapping: each task takes
  its own settings, e.g. path= or d_model= for the LRA tasks, and checks them when it is built); agents;
  budgets (`steps_per_agent`, `wall_clock_s`, `max_llm_tokens`); `workers` candidates evaluated at once.
  `analyze_every`: every agent writes an analysis of its results after every that many of its steps (0 =
  never); an analysis is a journal node that is never evaluated and does not count as a step."""

  task: str = "lra-listops"
  task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  agents: tuple[DesignAgentConfig, ...] = (
      DesignAgentConfig("greedy", "greedy", policy_options={"num_drafts": 2}),
      DesignAgentConfig("evolutionary", "evolutionary"))
  steps_per_agent: int | None = 5
  wall_clock_s: float | None = None
  max_llm_tokens: int | None = None
  workers: int = 1
  shared_tree: bool = False
  analyze_every: int = 8


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
  """How candidates run: `isolation` ("auto": bubblewrap namespaces when bwrap works on this machine, else the
  process-only sandbox; "bwrap": refuse to run without it; "process": rlimits, scrubbed environment and audit
  hook only, which does not protect secrets from a determined candidate), `block_processes` (under bwrap, refuse
  new processes with seccomp; null: yes unless GPU/TPU device nodes exist), `timeout_s` (None: the task's own),
  `memory_mb`, `keep_workdirs` (keep the temporary directories for debugging; the code, logs and records are
  copied into the run either way)."""

  isolation: Literal["auto", "bwrap", "process"] = "auto"
  block_processes: bool | None = None
  timeout_s: float | None = None
  memory_mb: int = 8192
  keep_workdirs: bool = False


@dataclasses.dataclass(frozen=True)
class DesignConfig:
  """A whole design run; results go to `run_dir/run_id` (run_id None: a fresh timestamped id)."""

  search: DesignSearchConfig = DesignSearchConfig()
  sandbox: SandboxConfig = SandboxConfig()
  executor: ExecutorConfig = ExecutorConfig()
  run_dir: str = "runs"
  run_id: str | None = None
  seed: int = 0

  def to_dict(self) -> dict[str, Any]:
    """Plain dicts and lists (what `resolved_config.yaml` holds and `from_dict` reads back)."""
    return to_plain(self)


def validate(config: DesignConfig) -> None:
  """The type and choice checks of config_io (for a config built in Python), then cross-field checks;
  ConfigError naming the key."""
  from aira_jax.cli_common import check_agents, check_budgets
  check_types(config)
  check_executor(config.executor)
  search = config.search

  def need(condition: bool, message: str) -> None:
    if not condition:
      raise ConfigError(message)

  check_agents(search.agents)
  check_budgets(search)
  need(search.workers >= 1, f"search.workers must be >= 1, got {search.workers}")
  need(search.analyze_every >= 0, f"search.analyze_every must be >= 0 (0 = never), got {search.analyze_every}")
  need(config.sandbox.timeout_s is None or config.sandbox.timeout_s > 0, "sandbox.timeout_s must be positive")
  need(config.sandbox.memory_mb >= 512, f"sandbox.memory_mb must be at least 512, got {config.sandbox.memory_mb}")
  need(config.executor.backend == "local" or config.sandbox.isolation != "process",
       "executor.backend=ray with sandbox.isolation=process: a candidate outside bwrap's network namespace could "
       "reach the Ray cluster and run code as the trusted side; use sandbox.isolation=bwrap (or auto)")


def from_dict(values: Mapping[str, Any] | None) -> DesignConfig:
  """A validated `DesignConfig` from nested plain values (missing keys take their defaults)."""
  config = from_mapping(DesignConfig, values or {})
  validate(config)
  return config


def load_config(path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()) -> DesignConfig:
  """The config from a YAML file (None: defaults) with `overrides` applied; ConfigError when invalid."""
  config = load_dataclass(DesignConfig, path, overrides)
  validate(config)
  return config
