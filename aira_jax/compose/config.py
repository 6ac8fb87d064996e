"""The configuration of a compose run: frozen dataclasses (the API), read from YAML with dotted overrides.

`ComposeConfig` has four sections: `search` (stage 1: space, depth, agents, budgets), `evaluator` (how one
layout is trained and scored on the proxy task), `scale` (stage 2: aggregation, extrapolation, baselines and
the isoFLOP study) and the run's own fields (where results go, the seed). The defaults are the tiny CPU run
that `python -m aira_jax.compose` performs (its wall time on 2 CPU cores: experiments/bench/RESULTS.md, issue
19, "`python -m aira_jax.compose` at the new defaults"); `experiments/compose/*.yaml` name bigger studies.

`load_config(path, overrides)` reads a YAML file and applies `key=value` overrides such as `search.depth=8`
or `evaluator.model.ffn_dim=64` (see aira_jax/config_io.py for the rules), then checks the cross-field
rules of `validate`. Settings with fixed choices are `Literal` types, which config_io checks (and --help lists,
`config_io.choices_help(ComposeConfig)`); `evaluator.model` is a typed `ModelOverrides`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aira_jax.cli_common import PolicyName
from aira_jax.executor import ExecutorConfig, check_executor
from aira_jax.train.optimizers import OptimizerConfig
from aira_jax.config_io import (ConfigError, Overrides, apply_overrides, check_types, from_mapping, load_dataclass,
                                to_plain)

__all__ = ["AgentConfig", "ComposeConfig", "ConfigError", "EvaluatorConfig", "ModelOverrides", "ScaleConfig",
           "SearchConfig", "apply_overrides", "from_dict", "load_config", "validate"]

# Names of fixed choices (tests keep the ones that mirror a registry equal to it).
MadTask = Literal["in_context_recall", "fuzzy_recall", "noisy_recall", "selective_copying", "compression",
                  "memorization"]  # aira_jax.tasks.mad.MAD_LITE
EvaluatorMode = Literal["auto", "switch", "dedicated"]
PresetName = Literal["tiny", "proxy", "350m", "1b", "3b"]  # aira_jax.models.PRESETS
ExtrapolationMethod = Literal["stretch", "stack"]
Baseline = Literal["llama", "composer", "composer6", "nemotron"]  # aira_jax.compose.families.BASELINES
FlopsCount = Literal["xla", "analytic", "6n"]
ScaleTrainer = Literal["auto", "switch", "sharded"]
MLPActivation = Literal["swiglu", "relu2"]  # ModelConfig.mlp_activation


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """One search agent: its policy ("greedy", "mcts", "evolutionary", "one_shot") and who writes its layouts
  (`llm`: None for the built-in heuristic agent, else an LLM spec such as "gemini:gemini-2.5-pro",
  "openai:qwen3@http://localhost:8000/v1" or "scripted:replies.jsonl"). `policy_options`: the policy's
  settings, e.g. {num_drafts: 3, debug_prob: 1.0} for greedy. `llm_options`: the LLM client's settings
  (aira_jax.llm.registry.LLM_OPTIONS), e.g. {timeout_s: 60, max_attempts: 3, base_url: "https://proxy/v1"}."""

  name: str
  policy: PolicyName = "greedy"
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
  `workers` evaluations at once (None = one per device). `analyze_every`: every agent writes an analysis of its
  results after every that many of its steps (0 = never); an analysis is a journal node that is never evaluated
  and does not count as a step, and later prompts of LLM agents show the latest one (agents/ensemble.py). After
  the search the `race_top` best layouts are raced (compose/racing.py): re-evaluated with up to `race_repeats`
  seeds in all (the search's own included) until paired `race_confidence` t intervals separate them from the
  leader; 0 or 1 turns racing off."""

  space: str = "AM"
  depth: int = 16
  agents: tuple[AgentConfig, ...] = DEFAULT_AGENTS
  steps_per_agent: int | None = 12
  wall_clock_s: float | None = None
  max_llm_tokens: int | None = None
  workers: int | None = None
  shared_tree: bool = False
  analyze_every: int = 8
  race_top: int = 6
  race_repeats: int = 5
  race_confidence: float = 0.9


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ModelOverrides(Overrides):
  """`evaluator.model`: ModelConfig fields (aira_jax.models.ModelConfig documents them) laid over the preset,
  as in `preset_config(preset, **overrides)`. Every field is optional; null (None) keeps the preset's value, so
  a preset's non-null num_kv_heads, head_dim, sliding_window or softcap cannot be reset to null here (give
  num_kv_heads = num_heads for full multi-head attention). Reads as the mapping of the fields that are set.
  Types mirror ModelConfig's (a test keeps them equal); cross-field rules (num_heads divides d_model, ...) are
  ModelConfig's own, checked by `validate`."""

  vocab_size: int | None = None
  d_model: int | None = None
  num_heads: int | None = None
  num_kv_heads: int | None = None
  head_dim: int | None = None
  ffn_dim: int | None = None
  mlp_activation: MLPActivation | None = None
  rope_theta: float | None = None
  qk_norm: bool | None = None
  sliding_window: int | None = None
  attention_softcap: float | None = None
  ssm_expand: int | None = None
  ssm_head_dim: int | None = None
  ssm_state_dim: int | None = None
  ssm_groups: int | None = None
  ssm_conv_width: int | None = None
  ssm_chunk_size: int | None = None
  ssm_dt_min: float | None = None
  ssm_dt_max: float | None = None
  tie_embeddings: bool | None = None
  logit_softcap: float | None = None
  norm_eps: float | None = None
  init_std: float | None = None
  max_seq_len: int | None = None
  param_dtype: str | None = None
  dtype: str | None = None
  remat: bool | None = None
  attention_impl: str | None = None
  scan_impl: str | None = None


PROXY_OPTIMIZER = OptimizerConfig(name="adamw", lr=3e-3, weight_decay=0.0, b1=0.9, b2=0.95, clip_norm=1.0,
                                  schedule="warmup_cosine", warmup_fraction=0.1, min_lr_ratio=0.1)
"""The optimizer of compose's training runs: Adam (no weight decay) after clipping at 1, 10% warmup, cosine to 10%
of the peak at the last step. Each run's schedule spans its own steps (`total_steps` is not used);
`warmup_steps` applies only with `warmup_fraction: null`."""


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
  """How one layout is scored.

  `task`: "mad-lite" (mean validation accuracy over `mad_tasks`) or any registered language-modelling task
  ("mad/in_context_recall", "mqar", "text/bytes", ...) built with `task_options`. `mode`: "switch" (one
  program for every layout of a depth and width), "dedicated" (a program per layout) or "auto" (switch; see
  evaluator.py). The model is the `preset` with `model` overrides (a `ModelOverrides`; a plain mapping given in
  Python is converted). `task_options` stays a plain mapping: its keys are the task's own (aira_jax.tasks'
  constructors, which check them when the evaluator builds the task). Training: `steps` steps of `batch_size`
  rows with `optimizer` (an `aira_jax.train.OptimizerConfig`, default `PROXY_OPTIMIZER`: set e.g.
  `evaluator.optimizer.lr=1e-2`); the score is the task's metric on `eval_examples` validation rows.

  The default proxy is the scale stage's own text task, small: text/bytes at seq 64, width 32, 180 steps
  (val_bpb, lower is better). It is the candidate whose ranking of layouts agreed best with a larger text/bytes
  target's; MAD-lite at the same compute did not track the target (two of its three tasks sit at chance for
  every layout at this size). Measured by experiments/bench/proxy_calibration.py --config
  experiments/compose/calibration.yaml (RESULTS.md, issue 19, "Proxy calibration"). MAD-lite stays available
  (`task: mad-lite`, which ignores `task_options`); its default tasks leave out memorization and compression,
  which every 16-layer layout tried solved, so they cannot rank layouts."""

  task: str = "text/bytes"
  task_options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"seq_len": 64})
  mad_tasks: tuple[MadTask, ...] = ("in_context_recall", "fuzzy_recall", "selective_copying")
  mode: EvaluatorMode = "auto"
  preset: PresetName = "proxy"
  model: ModelOverrides = ModelOverrides(d_model=32, num_heads=2, ffn_dim=96, ssm_head_dim=16)
  steps: int = 180
  batch_size: int = 16
  optimizer: OptimizerConfig = PROXY_OPTIMIZER
  eval_examples: int = 128
  seed: int = 0

  def __post_init__(self):
    if not isinstance(self.model, ModelOverrides):  # a mapping given in Python, e.g. model={"d_model": 16}
      object.__setattr__(self, "model", from_mapping(ModelOverrides, self.model, "evaluator.model"))


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
  `batch_size`, `optimizer` (the evaluator's default at peak lr 1e-2). `task_options` is a plain mapping of
  the task's own settings (checked when the task is built). Each run trains on D = C / F tokens, F = its
  model's training FLOPs per token counted by `flops` ("xla": XLA's cost analysis of forward + backward, the default; "analytic": matrix products only; "6n": 6 x
  parameters, the Chinchilla convention that leaves out attention scores; compose/flops.py). A (budget, width)
  pair whose D gives fewer than `min_steps` steps is dropped and reported. Score: validation loss on
  `eval_tokens` tokens. Every run goes through the project's one training loop (aira_jax.train.trainer);
  `trainer` picks the model and mesh: "switch" (one compiled switch program per width for all families, one
  device), "sharded" (each family's own model, sharded over every local device: for GPUs and TPU pods) or
  "auto" (switch on CPU, else sharded). Both start from the same parameters and batches, so they give the
  same losses up to floating-point order.
  Fits: `bootstrap` resamples; `target_loss` for the compute-to-loss comparison (None: chosen from the
  data, see scaling.py). `from_runs`: pool the search results of these run directories too."""

  kmeans_k: int = 5
  context: int = 0
  target_depth: int = 24
  methods: tuple[ExtrapolationMethod, ...] = ("stretch",)
  baselines: tuple[Baseline, ...] = ("llama", "composer", "nemotron")
  task: str = "text/bytes"
  task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  budgets: tuple[float, ...] = (4e10, 5.7e10, 8e10, 1.13e11, 1.6e11)
  widths: tuple[int, ...] = (6, 8, 12)
  head_dim: int = 16
  ffn_ratio: float = 3.0
  seq_len: int = 64
  batch_size: int = 16
  optimizer: OptimizerConfig = dataclasses.replace(PROXY_OPTIMIZER, lr=1e-2)
  flops: FlopsCount = "xla"
  min_steps: int = 20
  eval_tokens: int = 65536
  trainer: ScaleTrainer = "auto"
  bootstrap: int = 1000
  target_loss: float | None = None
  from_runs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ComposeConfig:
  """A whole compose run; results go to `run_dir/run_id` (run_id None: a fresh timestamped id)."""

  search: SearchConfig = SearchConfig()
  evaluator: EvaluatorConfig = EvaluatorConfig()
  scale: ScaleConfig = ScaleConfig()
  executor: ExecutorConfig = ExecutorConfig()
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


def _check_tasks_baselines_and_model(config: ComposeConfig) -> None:
  """The proxy task's name, the baselines at the target depth and the model (the preset with its overrides),
  without building anything heavier than a ModelConfig; ConfigError naming the key."""
  from aira_jax.compose.families import baseline_layout
  from aira_jax.models import preset_config
  from aira_jax.tasks import task_names
  evaluator, scale = config.evaluator, config.scale
  if not evaluator.mad_tasks:  # names are Literal-checked whatever the task, so a typo never waits for mad-lite
    raise ConfigError("evaluator.mad_tasks: give at least one MAD-lite task")
  if evaluator.task != "mad-lite" and evaluator.task not in task_names():
    raise ConfigError(f"evaluator.task: unknown {evaluator.task!r}; choose mad-lite or one of "
                      f"{', '.join(task_names())}")
  for name in scale.baselines:
    try:
      baseline_layout(name, scale.target_depth)
    except ValueError as e:
      raise ConfigError(f"scale.baselines: {name} at scale.target_depth={scale.target_depth}: {e}") from None
  try:
    preset_config(evaluator.preset, **evaluator.model)
  except ValueError as e:
    raise ConfigError(f"evaluator.model: {e}") from None


def validate(config: ComposeConfig) -> None:
  """The type and choice checks of config_io (for a config built in Python), then the cross-field checks the
  dataclasses cannot make alone; ConfigError naming the key."""
  from aira_jax import primitives
  from aira_jax.cli_common import check_agents, check_budgets
  check_types(config)
  check_executor(config.executor)
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
  need(search.analyze_every >= 0, f"search.analyze_every must be >= 0 (0 = never), got {search.analyze_every}")
  need(search.race_top >= 0 and search.race_repeats >= 0, "search.race_top and search.race_repeats must be >= 0")
  need(0 < search.race_confidence < 1, f"search.race_confidence must lie in (0, 1), got {search.race_confidence}")
  need(evaluator.steps >= 1 and evaluator.batch_size >= 1 and evaluator.eval_examples >= 1,
       "evaluator.steps, evaluator.batch_size and evaluator.eval_examples must be positive")
  need(evaluator.optimizer.lr > 0, f"evaluator.optimizer.lr must be positive, got {evaluator.optimizer.lr}")
  need(scale.optimizer.lr > 0, f"scale.optimizer.lr must be positive, got {scale.optimizer.lr}")
  need(scale.target_depth >= 1, f"scale.target_depth must be at least 1, got {scale.target_depth}")
  need("stretch" not in scale.methods or scale.target_depth >= search.depth,
       f"scale.target_depth={scale.target_depth} is below search.depth={search.depth}: stretch keeps every run of "
       f"the found layout, which can have as many runs as layers; use a target of at least {search.depth} or "
       "scale.methods=[stack]")
  _check_tasks_baselines_and_model(config)
  need(len(scale.methods) >= 1, "scale.methods: give at least one of stretch, stack")
  need(len(scale.budgets) >= 2, f"scale.budgets: a frontier fit needs at least 2 budgets, got {scale.budgets}")
  need(all(b > 0 for b in scale.budgets), f"scale.budgets must be positive, got {scale.budgets}")
  need(len(scale.widths) >= 3, f"scale.widths: a parabola fit needs at least 3 sizes, got {scale.widths}")
  need(scale.kmeans_k >= 1 and scale.context >= 0, "scale.kmeans_k must be >= 1 and scale.context >= 0")
  need(scale.min_steps >= 1 and scale.eval_tokens >= 1 and scale.seq_len >= 1 and scale.batch_size >= 1,
       "scale.min_steps, scale.eval_tokens, scale.seq_len and scale.batch_size must be positive")
  need(scale.head_dim >= 2 and scale.head_dim % 2 == 0, f"scale.head_dim must be even, got {scale.head_dim}")
  need(scale.ffn_ratio > 0, f"scale.ffn_ratio must be positive, got {scale.ffn_ratio}")
  need(scale.bootstrap >= 0, f"scale.bootstrap must be >= 0, got {scale.bootstrap}")
