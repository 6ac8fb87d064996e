"""The configuration of a compose run: frozen dataclasses (the API), read from YAML with dotted overrides.

`ComposeConfig` has four sections: `search` (stage 1: space, depth, agents, budgets), `evaluator` (how one
layout is trained and scored on the proxy task), `scale` (stage 2: aggregation, extrapolation, baselines and
the isoFLOP study) and the run's own fields (where results go, the seed). The defaults are the tiny CPU run
that `python -m aira_jax.compose` performs in about 15 minutes on 2 CPU cores; `experiments/compose/*.yaml`
name bigger studies.

`load_config(path, overrides)` reads a YAML file and applies `key=value` overrides such as `search.depth=8`
or `evaluator.model.ffn_dim=64` (see aira_jax/config_io.py for the rules), then checks the cross-field
rules of `validate`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from aira_jax.config_io import ConfigError, apply_overrides, from_mapping, load_dataclass, to_plain

__all__ = ["AgentConfig", "ComposeConfig", "ConfigError", "EvaluatorConfig", "ScaleConfig", "SearchConfig",
           "apply_overrides", "from_dict", "load_config", "validate"]


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """One search agent: its policy ("greedy", "mcts", "evolutionary", "one_shot") and who writes its layouts
  (`llm`: None for the built-in heuristic agent, else an LLM spec such as "gemini:gemini-2.5-pro",
  "openai:qwen3@http://localhost:8000/v1" or "scripted:replies.jsonl"). `policy_options`: the policy's
  settings, e.g. {num_drafts: 3, debug_prob: 1.0} for greedy. `llm_options`: the LLM client's settings
  (aira_jax.llm.registry.LLM_OPTIONS), e.g. {timeout_s: 60, max_attempts: 3, base_url: "https://proxy/v1"}."""

  name: str
  policy: str = "greedy"
  llm: str | None = None
  policy_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  llm_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_text(cls, text: str) -> AgentConfig:
    """"greedy" is short for {name: greedy, policy: greedy}."""
    return cls(name=text, policy=text)


DEFAULT_AGENTS = (AgentConfig("greedy", "greedy"), AgentConfig("mcts", "mcts"),
                  AgentConfig("evolutionary", "evolutionary"))


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Stage 1. `space` "AM" or "AMS"; `depth` layers per layout; budgets: `steps_per_agent` (evaluations
  asked for per agent, duplicates included), `wall_clock_s`, `max_llm_tokens` (None = unlimited);
  `workers` evaluations at once (None = one per device). After the search the `race_top` best layouts are
  raced (compose/racing.py): re-evaluated with up to `race_repeats` seeds in all (the search's own included)
  until paired `race_confidence` t intervals separate them from the leader; 0 or 1 turns racing off."""

  space: str = "AM"
  depth: int = 16
  agents: tuple[AgentConfig, ...] = DEFAULT_AGENTS
  steps_per_agent: int | None = 12
  wall_clock_s: float | None = None
  max_llm_tokens: int | None = None
  workers: int | None = None
  shared_tree: bool = False
  race_top: int = 6
  race_repeats: int = 5
  race_confidence: float = 0.9


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
  """How one layout is scored.

  `task`: "mad-lite" (mean validation accuracy over `mad_tasks`) or any registered language-modelling task
  ("mad/in_context_recall", "mqar", "text/bytes", ...) built with `task_options`. `mode`: "switch" (one
  program for every layout of a depth and width), "dedicated" (a program per layout) or "auto" (switch; see
  evaluator.py). The model is the `preset` with `model` overrides (ModelConfig fields). Training: `steps` of
  Adam with a cosine schedule peaking at `lr`, `batch_size` rows a step; the score is the task's metric on
  `eval_examples` validation rows.

  The default proxy is the scale stage's own text task, small: text/bytes at seq 64, width 32, 180 steps
  (val_bpb, lower is better). The proxy calibration study (experiments/compose/calibration.yaml, RESULTS.md)
  ranked 24 layouts by each candidate proxy and by text/bytes at 8.35x the compute: this proxy's Spearman rho
  was 0.87 [90% CI 0.71, 0.94] (its own seed-to-seed rho 0.93) for 6.2 CPU minutes over 72 evaluations, while
  MAD-lite at the old default (3 tasks, 60 steps, the same compute) gave -0.09 [-0.39, 0.24]: at this size two
  of its three tasks sit at chance for every layout. MAD-lite stays available (`task: mad-lite`, which ignores
  `task_options`); its default tasks leave out memorization and compression, which every 16-layout layout tried
  solved (1.000, and 0.995-1.000 for all but all-attention)."""

  task: str = "text/bytes"
  task_options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"seq_len": 64})
  mad_tasks: tuple[str, ...] = ("in_context_recall", "fuzzy_recall", "selective_copying")
  mode: str = "auto"
  preset: str = "proxy"
  model: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"d_model": 32, "num_heads": 2,
                                                                        "ffn_dim": 96, "ssm_head_dim": 16})
  steps: int = 180
  batch_size: int = 16
  lr: float = 3e-3
  eval_examples: int = 128
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
  """Stage 2.

  Aggregation: Composer's k-means top cluster (`kmeans_k`) and per-layer vote with `context` previous layers
  (0 = N_0); extrapolation to `target_depth` by `methods` ("stretch", "stack"). `baselines`: "llama"
  (alternating A/M), "composer" (Composer's 16-layer pattern, stretched), "composer6" (its 6-layer pattern,
  stacked), "nemotron" (a Nemotron-H-like hybrid with Mamba-2 layers); the first one is the baseline every
  family is compared with.
  isoFLOP study on `task` (a text LM built with `task_options`, e.g. {path: my_corpus/}) at `budgets`
  (FLOPs) x `widths` (d_model; attention and Mamba heads of `head_dim`, FFN `ffn_ratio` x width), `seq_len`,
  `batch_size`, `lr`. Each run trains on D = C / F tokens, F = its model's training FLOPs per token counted
  by `flops` ("xla": XLA's cost analysis of forward + backward, the default; "analytic": matrix products
  only; "6n": 6 x parameters, the Chinchilla convention that leaves out attention scores; compose/flops.py).
  A (budget, width) pair whose D gives fewer than `min_steps` steps is dropped and reported. Score: validation loss on `eval_tokens` tokens. `trainer`: "switch" (one
  compiled program per width for all families, one device), "sharded" (a dedicated model per run through
  aira_jax.train's sharded trainer, for GPUs and TPU pods) or "auto" (switch on CPU, else sharded).
  Fits: `bootstrap` resamples; `target_loss` for the compute-to-loss comparison (None: chosen from the
  data, see scaling.py). `from_runs`: pool the search results of these run directories too."""

  kmeans_k: int = 5
  context: int = 0
  target_depth: int = 24
  methods: tuple[str, ...] = ("stretch",)
  baselines: tuple[str, ...] = ("llama", "composer", "nemotron")
  task: str = "text/bytes"
  task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  budgets: tuple[float, ...] = (4e10, 5.7e10, 8e10, 1.13e11, 1.6e11)
  widths: tuple[int, ...] = (6, 8, 12)
  head_dim: int = 16
  ffn_ratio: float = 3.0
  seq_len: int = 64
  batch_size: int = 16
  lr: float = 1e-2
  flops: str = "xla"
  min_steps: int = 20
  eval_tokens: int = 65536
  trainer: str = "auto"
  bootstrap: int = 1000
  target_loss: float | None = None
  from_runs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ComposeConfig:
  """A whole compose run; results go to `run_dir/run_id` (run_id None: a fresh timestamped id)."""

  search: SearchConfig = SearchConfig()
  evaluator: EvaluatorConfig = EvaluatorConfig()
  scale: ScaleConfig = ScaleConfig()
  run_dir: str = "runs"
  run_id: str | None = None
  seed: int = 0

  def to_dict(self) -> dict[str, Any]:
    """Plain dicts and lists (what `resolved_config.yaml` holds and `from_dict` reads back)."""
    return to_plain(self)


def from_dict(values: Mapping[str, Any] | None) -> ComposeConfig:
  """A validated `ComposeConfig` from nested plain values (missing keys take their defaults)."""
  config = from_mapping(ComposeConfig, values or {})
  validate(config)
  return config


def load_config(path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()) -> ComposeConfig:
  """The config from a YAML file (None: defaults) with `overrides` applied; ConfigError when invalid."""
  config = load_dataclass(ComposeConfig, path, overrides)
  validate(config)
  return config


def _check_tasks_and_baselines(config: ComposeConfig) -> None:
  """The proxy task's name and the baselines, without building anything; ConfigError naming the key."""
  from aira_jax.compose.families import BASELINES, baseline_layout
  from aira_jax.tasks import task_names
  from aira_jax.tasks.mad import MAD_LITE
  evaluator, scale = config.evaluator, config.scale
  unknown = [t for t in evaluator.mad_tasks if t not in MAD_LITE]
  if unknown or not evaluator.mad_tasks:  # checked whatever the task, so a typo never waits for task=mad-lite
    raise ConfigError(f"evaluator.mad_tasks: unknown {unknown or '(empty)'}; choose from {', '.join(MAD_LITE)}")
  if evaluator.task != "mad-lite" and evaluator.task not in task_names():
    raise ConfigError(f"evaluator.task: unknown {evaluator.task!r}; choose mad-lite or one of "
                      f"{', '.join(task_names())}")
  for name in scale.baselines:
    if name not in BASELINES:
      raise ConfigError(f"scale.baselines: unknown {name!r}; choose from {', '.join(BASELINES)}")
    try:
      baseline_layout(name, scale.target_depth)
    except ValueError as e:
      raise ConfigError(f"scale.baselines: {name} at scale.target_depth={scale.target_depth}: {e}") from None


def validate(config: ComposeConfig) -> None:
  """Cross-field checks the dataclasses cannot make alone; ConfigError naming the key."""
  from aira_jax import primitives
  from aira_jax.cli_common import check_agents, check_budgets
  search, evaluator, scale = config.search, config.evaluator, config.scale

  def need(condition: bool, message: str) -> None:
    if not condition:
      raise ConfigError(message)

  try:
    primitives.normalize_space(search.space)
  except ValueError as e:
    raise ConfigError(f"search.space: {e}") from None
  need(search.depth >= 1, f"search.depth must be at least 1, got {search.depth}")
  check_agents(search.agents)
  check_budgets(search)
  need(search.workers is None or search.workers >= 1, f"search.workers must be >= 1, got {search.workers}")
  need(search.race_top >= 0 and search.race_repeats >= 0, "search.race_top and search.race_repeats must be >= 0")
  need(0 < search.race_confidence < 1, f"search.race_confidence must lie in (0, 1), got {search.race_confidence}")
  need(evaluator.mode in ("auto", "switch", "dedicated"),
       f"evaluator.mode must be auto, switch or dedicated, got {evaluator.mode!r}")
  need(evaluator.steps >= 1 and evaluator.batch_size >= 1 and evaluator.eval_examples >= 1,
       "evaluator.steps, evaluator.batch_size and evaluator.eval_examples must be positive")
  need(evaluator.lr > 0, f"evaluator.lr must be positive, got {evaluator.lr}")
  need(scale.target_depth >= 1, f"scale.target_depth must be at least 1, got {scale.target_depth}")
  need("stretch" not in scale.methods or scale.target_depth >= search.depth,
       f"scale.target_depth={scale.target_depth} is below search.depth={search.depth}: stretch keeps every run of "
       f"the found layout, which can have as many runs as layers; use a target of at least {search.depth} or "
       "scale.methods=[stack]")
  _check_tasks_and_baselines(config)
  for method in scale.methods:
    need(method in ("stretch", "stack"), f"scale.methods: unknown {method!r}; allowed: stretch, stack")
  need(len(scale.methods) >= 1, "scale.methods: give at least one of stretch, stack")
  need(len(scale.budgets) >= 2, f"scale.budgets: a frontier fit needs at least 2 budgets, got {scale.budgets}")
  need(all(b > 0 for b in scale.budgets), f"scale.budgets must be positive, got {scale.budgets}")
  need(len(scale.widths) >= 3, f"scale.widths: a parabola fit needs at least 3 sizes, got {scale.widths}")
  need(scale.kmeans_k >= 1 and scale.context >= 0, "scale.kmeans_k must be >= 1 and scale.context >= 0")
  need(scale.flops in ("xla", "analytic", "6n"), f"scale.flops must be xla, analytic or 6n, got {scale.flops!r}")
  need(scale.trainer in ("auto", "switch", "sharded"),
       f"scale.trainer must be auto, switch or sharded, got {scale.trainer!r}")
  need(scale.min_steps >= 1 and scale.eval_tokens >= 1 and scale.seq_len >= 1 and scale.batch_size >= 1,
       "scale.min_steps, scale.eval_tokens, scale.seq_len and scale.batch_size must be positive")
  need(scale.head_dim >= 2 and scale.head_dim % 2 == 0, f"scale.head_dim must be even, got {scale.head_dim}")
  need(scale.ffn_ratio > 0, f"scale.ffn_ratio must be positive, got {scale.ffn_ratio}")
  need(scale.bootstrap >= 0, f"scale.bootstrap must be >= 0, got {scale.bootstrap}")
