"""Tests for aira_jax.compose.config: defaults, the to_dict / from_dict round trip, YAML files with dotted
overrides (numbers, lists, null, agents), Literal choices and the typed `evaluator.model`, the choices in
--help, and the ConfigError messages that name the offending key."""

import dataclasses
import pathlib
import typing

import pytest
import yaml

from aira_jax.compose.config import (AgentConfig, ComposeConfig, ConfigError, EvaluatorConfig, ModelOverrides,
                                     ScaleConfig, SearchConfig, apply_overrides, from_dict, load_config, validate)
from aira_jax.config_io import choices

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "compose"


def test_defaults_validate_and_load_without_a_file():
  validate(ComposeConfig())
  assert load_config() == ComposeConfig()


def test_to_dict_is_plain_and_round_trips():
  config = load_config(overrides=["search.agents=[{name: scripted, policy: mcts, llm: 'scripted:r.jsonl'}]",
                                  "scale.budgets=[1e10,3e10]", "evaluator.task_options={seq_len: 32}",
                                  "run_id=abc"])
  values = config.to_dict()
  # Plain YAML-safe values only: safe_dump refuses tuples and dataclasses.
  assert yaml.safe_load(yaml.safe_dump(values)) == values
  assert values["search"]["agents"] == [{"name": "scripted", "policy": "mcts", "llm": "scripted:r.jsonl",
                                        "policy_options": {}, "llm_options": {}}]
  assert from_dict(values) == config
  assert from_dict(ComposeConfig().to_dict()) == ComposeConfig()


def test_partial_yaml_file_with_overrides(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text(yaml.safe_dump({"search": {"depth": 8, "space": "AMS"}, "scale": {"widths": [16, 32, 64]},
                                  "seed": 3}))
  config = load_config(path, ["search.depth=6", "evaluator.steps=5"])
  assert config.search.depth == 6  # the override wins over the file
  assert config.search.space == "AMS"
  assert config.scale.widths == (16, 32, 64)
  assert config.evaluator.steps == 5
  assert config.seed == 3
  # Keys the file leaves out keep their defaults.
  assert config.search.agents == SearchConfig().agents
  assert config.scale.budgets == ScaleConfig().budgets
  assert config.evaluator.model == EvaluatorConfig().model


def test_empty_yaml_file_gives_the_defaults(tmp_path):
  path = tmp_path / "empty.yaml"
  path.write_text("")
  assert load_config(path) == ComposeConfig()


def test_overrides_parse_numbers_lists_and_null():
  config = load_config(overrides=["search.depth=8", "evaluator.optimizer.lr=1e-2", "search.wall_clock_s=1e3",
                                  "scale.budgets=[1e10,2e10]", "scale.target_loss=2.5", "search.workers=null",
                                  "search.max_llm_tokens=100000", "search.shared_tree=true",
                                  "search.analyze_every=0"])
  assert config.search.depth == 8 and isinstance(config.search.depth, int)
  assert config.evaluator.optimizer.lr == 0.01
  assert config.search.wall_clock_s == 1000.0 and isinstance(config.search.wall_clock_s, float)
  assert config.scale.budgets == (1e10, 2e10)
  assert all(isinstance(b, float) for b in config.scale.budgets)
  assert config.scale.target_loss == 2.5
  assert config.search.workers is None
  assert config.search.max_llm_tokens == 100_000
  assert config.search.shared_tree is True
  assert config.search.analyze_every == 0 and ComposeConfig().search.analyze_every == 8


def test_exponent_without_a_dot_becomes_a_float():
  # YAML 1.1 reads "1e12" (no dot) as a string; float fields must still accept it.
  assert yaml.safe_load("1e12") == "1e12"
  config = load_config(overrides=["scale.budgets=[1e12, 2e12]", "evaluator.optimizer.lr=3e-3"])
  assert config.scale.budgets == (1e12, 2e12)
  assert config.evaluator.optimizer.lr == 0.003


def test_null_clears_an_optional_field():
  assert load_config(overrides=["run_id=null"]).run_id is None
  config = load_config(overrides=["search.steps_per_agent=null", "search.wall_clock_s=60"])
  assert config.search.steps_per_agent is None
  assert config.search.wall_clock_s == 60.0


def test_a_scalar_for_a_tuple_field_becomes_a_one_item_tuple():
  assert load_config(overrides=["scale.methods=stack"]).scale.methods == ("stack",)
  assert load_config(overrides=["evaluator.mad_tasks=fuzzy_recall"]).evaluator.mad_tasks == ("fuzzy_recall",)


def test_agents_as_strings_and_mappings():
  config = load_config(overrides=["search.agents=[greedy, mcts]"])
  assert config.search.agents == (AgentConfig("greedy", "greedy"), AgentConfig("mcts", "mcts"))
  config = load_config(overrides=[
      "search.agents=[{name: llm-greedy, policy: greedy, llm: 'gemini:gemini-2.5-pro'}, evolutionary]"])
  assert config.search.agents == (AgentConfig("llm-greedy", "greedy", "gemini:gemini-2.5-pro"),
                                  AgentConfig("evolutionary", "evolutionary"))


def test_agent_mapping_without_policy_takes_the_default_policy():
  config = load_config(overrides=["search.agents=[{name: solo}]"])
  assert config.search.agents == (AgentConfig("solo", "greedy", None),)


def test_apply_overrides_leaves_its_input_alone():
  values = {"search": {"depth": 4}}
  out = apply_overrides(values, ["search.depth=8", "scale.kmeans_k=3"])
  assert out == {"search": {"depth": 8}, "scale": {"kmeans_k": 3}}
  assert values == {"search": {"depth": 4}}


# --- Errors name the key. -----------------------------------------------------------------------------------


def test_unknown_key_lists_the_allowed_keys():
  with pytest.raises(ConfigError, match=r"search: unknown key\(s\) dept; allowed: space, depth, agents"):
    load_config(overrides=["search.dept=8"])
  with pytest.raises(ConfigError, match=r"config: unknown key\(s\) serach; allowed: search, evaluator, scale"):
    load_config(overrides=["serach.depth=8"])
  with pytest.raises(ConfigError, match=r"search\.agents\[0\]: unknown key\(s\) polcy; allowed: name, policy, llm"):
    load_config(overrides=["search.agents=[{name: a, polcy: greedy}]"])


@pytest.mark.parametrize("override, fragment", [
    ("search.depth=abc", r"search\.depth: expected an integer, got 'abc'"),
    ("search.depth=2.5", r"search\.depth: expected an integer"),
    ("search.depth=true", r"search\.depth: expected an integer"),
    ("evaluator.optimizer.lr=fast", r"evaluator\.optimizer\.lr: expected a number"),
    ("evaluator.optimizer.schedule=cosine", r"evaluator\.optimizer\.schedule: must be one of warmup_cosine, "),
    ("scale.optimizer.warmup_fraction=1.5", r"scale\.optimizer: warmup_fraction must lie in \[0, 1\), got 1\.5"),
    ("evaluator.optimizer.rate=1", r"evaluator\.optimizer: unknown key\(s\) rate; allowed: name, lr, "),
    ("evaluator.optimizer.clip_norm=big", r"evaluator\.optimizer\.clip_norm: expected a number, got 'big'"),
    ("scale.budgets=[1e10, big]", r"scale\.budgets\[1\]: expected a number"),
    ("search.shared_tree=1", r"search\.shared_tree: expected true or false"),
    ("search.analyze_every=often", r"search\.analyze_every: expected an integer, got 'often'"),
    ("evaluator.model=[1, 2]", r"evaluator\.model: expected a mapping"),
    ("search=3", r"search: expected a mapping of SearchConfig fields"),
    ("search.agents=[3]", r"search\.agents\[0\]: expected a mapping of AgentConfig fields"),
])
def test_wrong_type_names_the_key(override, fragment):
  with pytest.raises(ConfigError, match=fragment):
    load_config(overrides=[override])


def test_bool_is_not_a_number():
  with pytest.raises(ConfigError, match=r"evaluator\.optimizer\.lr"):
    load_config(overrides=["evaluator.optimizer.lr=true"])


@pytest.mark.parametrize("override", ["search.depth", "=8", "  =8"])
def test_malformed_override(override):
  with pytest.raises(ConfigError, match="must look like key=value") as info:
    load_config(overrides=[override])
  assert repr(override) in str(info.value)


def test_override_with_invalid_yaml():
  with pytest.raises(ConfigError, match=r"override 'scale\.budgets=\[1e10': the value is not valid YAML"):
    load_config(overrides=["scale.budgets=[1e10"])


def test_missing_config_file(tmp_path):
  path = tmp_path / "absent.yaml"
  with pytest.raises(ConfigError, match="does not exist") as info:
    load_config(path)
  assert str(path) in str(info.value)


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just text\n", "str"), ("3\n", "int")])
def test_yaml_file_must_hold_a_mapping(tmp_path, text, kind):
  path = tmp_path / "bad.yaml"
  path.write_text(text)
  with pytest.raises(ConfigError, match=f"must hold a mapping at the top level, got {kind}"):
    load_config(path)


def test_invalid_yaml_file(tmp_path):
  path = tmp_path / "broken.yaml"
  path.write_text("search: {depth: 8\n")
  with pytest.raises(ConfigError, match="is not valid YAML"):
    load_config(path)


@pytest.mark.parametrize("overrides, fragment", [
    (["search.space=AX"], r"search\.space: unknown primitive 'X'"),
    (["search.depth=0"], r"search\.depth must be at least 1"),
    (["search.agents=[]"], r"search\.agents: give at least one agent"),
    (["search.agents=[{name: a, policy: bogus}]"], r"search\.agents\[0\]\.policy: must be one of .*greedy"),
    (["search.agents=[greedy, greedy]"], r"search\.agents: names must be distinct"),
    (["search.agents=[{name: x, policy: greedy}, {name: x, policy: mcts}]"], "names must be distinct"),
    (["search.steps_per_agent=null"], "search: give at least one budget"),
    (["search.workers=0"], r"search\.workers must be >= 1"),
    (["scale.budgets=[1e10]"], r"scale\.budgets: a frontier fit needs at least 2 budgets"),
    (["scale.budgets=1e10"], r"scale\.budgets: a frontier fit needs at least 2 budgets"),
    (["scale.budgets=[1e10, -1e10]"], r"scale\.budgets must be positive"),
    (["scale.widths=[8, 16]"], r"scale\.widths: a parabola fit needs at least 3 sizes"),
    (["evaluator.optimizer.lr=0"], r"evaluator\.optimizer\.lr must be positive"),
    (["evaluator.steps=0"], r"evaluator\.steps"),
    (["scale.methods=[]"], r"scale\.methods: give at least one"),
    (["scale.target_depth=0"], r"scale\.target_depth must be at least 1"),
])
def test_validate_rules(overrides, fragment):
  with pytest.raises(ConfigError, match=fragment):
    load_config(overrides=overrides)


def test_any_single_budget_is_enough():
  for budget in ("search.wall_clock_s=30", "search.max_llm_tokens=1000"):
    config = load_config(overrides=["search.steps_per_agent=null", budget])
    assert config.search.steps_per_agent is None


def test_validate_checks_a_config_built_in_python():
  config = ComposeConfig(search=SearchConfig(agents=(AgentConfig("a"), AgentConfig("a", "mcts"))))
  with pytest.raises(ConfigError, match="names must be distinct"):
    validate(config)
  validate(dataclasses.replace(config, search=SearchConfig(agents=(AgentConfig("a"), AgentConfig("b", "mcts")))))


def test_config_error_is_a_value_error():
  assert issubclass(ConfigError, ValueError)


def test_dotted_override_changes_one_key_of_a_default_mapping():
  config = load_config(overrides=["evaluator.model.ffn_dim=64"])
  assert config.evaluator.model == {**EvaluatorConfig().model, "ffn_dim": 64}


def test_a_mapping_in_a_file_replaces_the_default_mapping(tmp_path):
  path = tmp_path / "c.yaml"
  path.write_text("evaluator:\n  model: {d_model: 64}\n")
  assert load_config(path).evaluator.model == {"d_model": 64}
  assert load_config(path, ["evaluator.model.num_heads=4"]).evaluator.model == {"d_model": 64, "num_heads": 4}


@pytest.mark.parametrize("agent, fragment", [
    ("{name: a, llm: 'bogus:x'}", r"search\.agents\[a\]: unknown LLM backend 'bogus'"),
    ("{name: a, llm: gemini}", r"search\.agents\[a\]: LLM spec 'gemini' must look like BACKEND:TARGET"),
    ("{name: a, llm: 'gemini:m', llm_options: {headers: {X: y}}}", r"not options of the gemini backend"),
    ("{name: a, llm: 'openai:m', llm_options: {timeout_s: 0}}", r"timeout_s must be a positive number"),
    ("{name: a, llm: 'openai:m', llm_options: {max_attempts: 0}}", r"max_attempts must be an integer >= 1"),
    ("{name: a, llm: 'openai:m', llm_options: {base_url: 'localhost:8000'}}", r"base_url must be an http"),
    ("{name: a, llm_options: {timeout_s: 5}}", r"llm_options: set only for an LLM agent"),
])
def test_llm_agents_are_checked_before_any_work(agent, fragment):
  with pytest.raises(ConfigError, match=fragment):
    load_config(overrides=[f"search.agents=[{agent}]"])


def test_llm_options_are_accepted_and_kept():
  config = load_config(overrides=["search.agents=[{name: a, llm: 'openai:m@http://127.0.0.1:8000/v1', "
                                  "llm_options: {timeout_s: 30, max_attempts: 2, headers: {X-Org: lab}}}]"])
  assert dict(config.search.agents[0].llm_options) == {"timeout_s": 30, "max_attempts": 2, "headers": {"X-Org": "lab"}}


def test_a_missing_scripted_file_stops_before_the_run_directory_exists(tmp_path):
  from aira_jax.compose import api
  overrides = [f"run_dir={tmp_path / 'runs'}", "search.agents=[{name: a, llm: 'scripted:missing.jsonl'}]"]
  with pytest.raises(ConfigError, match=r"search\.agents\[a\]\.llm: the scripted replies file 'missing.jsonl'"):
    api.open_run(overrides=overrides)
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, fragment", [
    ("search.steps_per_agent=0", r"search\.steps_per_agent must be positive \(or null for no limit\), got 0"),
    ("search.steps_per_agent=-1", r"search\.steps_per_agent must be positive"),
    ("search.wall_clock_s=-5", r"search\.wall_clock_s must be positive"),
    ("search.max_llm_tokens=0", r"search\.max_llm_tokens must be positive"),
    ("search.analyze_every=-1", r"search\.analyze_every must be >= 0 \(0 = never\), got -1"),
    ("scale.baselines=[foo]", r"scale\.baselines\[0\]: must be one of llama, composer"),
    ("scale.target_depth=1", r"scale\.target_depth=1 is below search\.depth=16"),
    ("evaluator.task=bogus", r"evaluator\.task: unknown 'bogus'; choose mad-lite or one of"),
    ("evaluator.mad_tasks=[nope]", r"evaluator\.mad_tasks\[0\]: must be one of in_context_recall"),
    ("evaluator.mad_tasks=[]", r"evaluator\.mad_tasks: give at least one"),
])
def test_bad_values_fail_before_any_work(override, fragment):
  with pytest.raises(ConfigError, match=fragment):
    load_config(overrides=[override])


def test_stack_alone_may_shrink_below_the_search_depth():
  config = load_config(overrides=["scale.target_depth=8", "scale.methods=[stack]", "scale.baselines=[llama]"])
  assert config.scale.target_depth == 8


@pytest.mark.parametrize("override", ["search.steps_per_agent=0", "scale.baselines=[foo]"])
def test_cli_exits_2_with_one_line_and_no_run_directory(tmp_path, capsys, override):
  from aira_jax.compose.cli import main
  assert main(["search", f"run_dir={tmp_path / 'runs'}", override]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
  assert not (tmp_path / "runs").exists()


def test_a_gemini_agent_without_a_key_stops_before_the_run_directory_exists(tmp_path, monkeypatch, capsys):
  from aira_jax.compose.cli import main
  for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
    monkeypatch.delenv(name, raising=False)
  agents = "search.agents=[{name: g, policy: greedy, llm: 'gemini:gemini-2.5-pro'}, mcts]"
  assert main(["search", f"run_dir={tmp_path / 'runs'}", agents]) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line == ("error: search.agents[g].llm: no Gemini API key: set GOOGLE_API_KEY or GEMINI_API_KEY (or pass "
                  "api_key=...)")
  assert not (tmp_path / "runs").exists()


# --- Settings with fixed choices: Literal types, checked in one place (config_io). ---------------------------


@pytest.mark.parametrize("override, message", [
    ("scale.flops=foo", "scale.flops: must be one of xla, analytic, 6n; got 'foo'"),
    ("scale.trainer=gpu", "scale.trainer: must be one of auto, switch, sharded; got 'gpu'"),
    ("scale.methods=[stretch, grow]", "scale.methods[1]: must be one of stretch, stack; got 'grow'"),
    ("scale.baselines=[llama, gpt]", "scale.baselines[1]: must be one of llama, composer, composer6, nemotron; "
                                     "got 'gpt'"),
    ("evaluator.mode=fast", "evaluator.mode: must be one of auto, switch, dedicated; got 'fast'"),
    ("evaluator.mode=1", "evaluator.mode: must be one of auto, switch, dedicated; got 1"),
    ("evaluator.preset=huge", "evaluator.preset: must be one of tiny, proxy, 350m, 1b, 3b; got 'huge'"),
    ("evaluator.mad_tasks=[in_context_recall, telepathy]",
     "evaluator.mad_tasks[1]: must be one of in_context_recall, fuzzy_recall, noisy_recall, selective_copying, "
     "compression, memorization; got 'telepathy'"),
    ("search.agents=[greedy, {name: b, policy: beam}]",
     "search.agents[1].policy: must be one of one_shot, greedy, mcts, evolutionary; got 'beam'"),
    ("search.agents=[beam]", "search.agents[0].policy: must be one of one_shot, greedy, mcts, evolutionary; "
                             "got 'beam'"),
    ("evaluator.model.mlp_activation=gelu", "evaluator.model.mlp_activation: must be one of swiglu, relu2; "
                                            "got 'gelu'"),
])
def test_a_bad_choice_is_one_line_naming_the_key_the_value_and_the_choices(override, message):
  with pytest.raises(ConfigError) as info:
    load_config(overrides=[override])
  assert str(info.value) == message


def test_every_choice_loads():
  for key, allowed in choices(ComposeConfig).items():
    for value in allowed:
      if key == "search.agents[].policy":
        override = f"search.agents=[{{name: a, policy: {value}}}]"
      elif key.endswith("[]"):
        override = f"{key[:-2]}=[{value}]"
      else:
        override = f"{key}={value}"
      extra = {"scale.baselines[]": ["scale.target_depth=18"],  # composer6 stacks 6 layers
               "evaluator.preset": ["evaluator.model={}"]}.get(key, [])  # the default's 2 heads are the proxy's
      load_config(overrides=[override, *extra])


def test_choices_of_a_config_built_in_python_are_checked_by_validate():
  with pytest.raises(ConfigError, match=r"^scale\.flops: must be one of xla, analytic, 6n; got 'FLOPS'$"):
    validate(ComposeConfig(scale=ScaleConfig(flops="FLOPS")))
  with pytest.raises(ConfigError, match=r"^search\.agents\[1\]\.policy: must be one of"):
    validate(ComposeConfig(search=SearchConfig(agents=(AgentConfig("a"), AgentConfig("b", "beam")))))


def test_choices_list_the_literal_settings():
  assert choices(ComposeConfig) == {
      "search.agents[].policy": ("one_shot", "greedy", "mcts", "evolutionary"),
      "evaluator.mad_tasks[]": ("in_context_recall", "fuzzy_recall", "noisy_recall", "selective_copying",
                                "compression", "memorization"),
      "evaluator.mode": ("auto", "switch", "dedicated"),
      "evaluator.preset": ("tiny", "proxy", "350m", "1b", "3b"),
      "evaluator.model.mlp_activation": ("swiglu", "relu2"),
      "evaluator.optimizer.name": ("adamw", "muon"),
      "evaluator.optimizer.schedule": ("warmup_cosine", "linear", "constant_then_decay", "constant"),
      "scale.methods[]": ("stretch", "stack"),
      "scale.baselines[]": ("llama", "composer", "composer6", "nemotron"),
      "scale.flops": ("xla", "analytic", "6n"),
      "scale.trainer": ("auto", "switch", "sharded"),
      "scale.optimizer.name": ("adamw", "muon"),
      "scale.optimizer.schedule": ("warmup_cosine", "linear", "constant_then_decay", "constant"),
      "executor.backend": ("local", "ray"),
  }


def test_choices_that_mirror_a_registry_equal_it():
  from aira_jax.agents.policies import POLICIES
  from aira_jax.compose.families import BASELINES
  from aira_jax.models import PRESETS
  from aira_jax.tasks.mad import MAD_LITE
  found = choices(ComposeConfig)
  assert set(found["search.agents[].policy"]) == set(POLICIES)
  assert found["scale.baselines[]"] == tuple(BASELINES)
  assert found["evaluator.preset"] == tuple(PRESETS)
  assert found["evaluator.mad_tasks[]"] == tuple(MAD_LITE)


def test_help_lists_the_choices(capsys):
  from aira_jax.compose.cli import main
  with pytest.raises(SystemExit) as info:
    main(["--help"])
  assert info.value.code == 0
  out = capsys.readouterr().out
  assert "settings with fixed choices" in out
  for line in ("  scale.flops: xla | analytic | 6n", "  scale.methods[]: stretch | stack",
               "  evaluator.mode: auto | switch | dedicated", "  evaluator.model.mlp_activation: swiglu | relu2",
               "  search.agents[].policy: one_shot | greedy | mcts | evolutionary"):
    assert line in out.splitlines()


# --- evaluator.model: a typed ModelOverrides. ---------------------------------------------------------------


def test_model_overrides_mirror_model_config():
  from aira_jax.models import ModelConfig
  config_hints = typing.get_type_hints(ModelConfig)
  override_hints = typing.get_type_hints(ModelOverrides)
  assert list(override_hints) == [f.name for f in dataclasses.fields(ModelConfig)]
  for name, hint in override_hints.items():
    assert hint == typing.Optional[config_hints[name]], name
    assert getattr(ModelOverrides(), name) is None


def test_model_overrides_read_as_the_mapping_of_what_is_set():
  model = EvaluatorConfig().model
  assert isinstance(model, ModelOverrides) and model.d_model == 32 and model.vocab_size is None
  assert dict(model) == {"d_model": 32, "num_heads": 2, "ffn_dim": 96, "ssm_head_dim": 16}
  assert model == {"d_model": 32, "num_heads": 2, "ffn_dim": 96, "ssm_head_dim": 16}
  assert ComposeConfig().to_dict()["evaluator"]["model"] == dict(model)
  assert hash(model) == hash(ModelOverrides(d_model=32, num_heads=2, ffn_dim=96, ssm_head_dim=16))
  assert len(ModelOverrides()) == 0 and "d_model" not in ModelOverrides()


def test_a_mapping_given_in_python_becomes_model_overrides():
  config = EvaluatorConfig(model={"d_model": 16, "num_heads": 2})
  assert isinstance(config.model, ModelOverrides) and config.model.d_model == 16
  with pytest.raises(ConfigError, match=r"^evaluator\.model: unknown key\(s\) widht; allowed: vocab_size, d_model"):
    EvaluatorConfig(model={"widht": 16})


def test_model_overrides_take_typed_values_and_null_keeps_the_preset():
  config = load_config(overrides=["evaluator.model.rope_theta=5e5", "evaluator.model.qk_norm=true",
                                  "evaluator.model.num_kv_heads=1", "evaluator.model.ffn_dim=null"])
  model = config.evaluator.model
  assert model.rope_theta == 500_000.0 and isinstance(model.rope_theta, float)
  assert model.qk_norm is True and model.num_kv_heads == 1
  assert model.ffn_dim is None and "ffn_dim" not in model  # the preset's FFN


@pytest.mark.parametrize("override, message", [
    ("evaluator.model.d_model=wide", "evaluator.model.d_model: expected an integer, got 'wide'"),
    ("evaluator.model.d_model=32.5", "evaluator.model.d_model: expected an integer, got 32.5"),
    ("evaluator.model.qk_norm=yes please", "evaluator.model.qk_norm: expected true or false, got 'yes please'"),
    ("evaluator.model.rope_theta=[1]", "evaluator.model.rope_theta: expected a number, got [1]"),
])
def test_a_bad_model_value_names_the_model_key(override, message):
  with pytest.raises(ConfigError) as info:
    load_config(overrides=[override])
  assert str(info.value) == message


def test_an_unknown_model_key_names_the_model_and_lists_its_fields(tmp_path):
  path = tmp_path / "c.yaml"
  path.write_text("evaluator:\n  model: {d_model: 64, widht: 16}\n")
  with pytest.raises(ConfigError) as info:
    load_config(path)
  message = str(info.value)
  assert message.startswith("evaluator.model: unknown key(s) widht; allowed: vocab_size, d_model, num_heads")
  assert "\n" not in message


def test_a_model_the_preset_cannot_take_fails_at_validation():
  with pytest.raises(ConfigError, match=r"^evaluator\.model: invalid ModelConfig: num_heads=3 does not divide"):
    load_config(overrides=["evaluator.model={d_model: 16, num_heads: 3}"])
  with pytest.raises(ConfigError, match=r"^evaluator\.model: invalid ModelConfig: dtype must be"):
    load_config(overrides=["evaluator.model.dtype=float8"])


@pytest.mark.parametrize("overrides, message", [
    (["evaluator.model.attention_impl=cuda"], "attention_impl must be one of auto, xla, pallas, pallas_interpret, "
                                              "cudnn, mosaic; got 'cuda'"),
    (["evaluator.model.scan_impl=mosaic"], "scan_impl must be one of auto, xla, pallas, pallas_interpret, triton; "
                                           "got 'mosaic'"),
    (["evaluator.model.attention_impl=mosaic"], "attention_impl='mosaic' computes in 16 bits: set dtype to bfloat16 "
                                                "or float16 (got float32)"),
])
def test_kernel_impls_the_kernels_do_not_offer_fail_at_validation(overrides, message):
  with pytest.raises(ConfigError) as info:
    load_config(overrides=overrides)
  assert str(info.value) == f"evaluator.model: invalid ModelConfig: {message}"
  config = load_config(overrides=["evaluator.model={attention_impl: mosaic, dtype: bfloat16}"])
  assert config.evaluator.model.attention_impl == "mosaic"


def test_model_overrides_round_trip_through_yaml():
  config = load_config(overrides=["evaluator.model={d_model: 64, num_heads: 4, mlp_activation: relu2}"])
  values = yaml.safe_load(yaml.safe_dump(config.to_dict()))
  assert values["evaluator"]["model"] == {"d_model": 64, "num_heads": 4, "mlp_activation": "relu2"}
  assert from_dict(values) == config


def test_a_study_model_mapping_replaces_the_default_one():
  # llm_gemini.yaml gives model: {d_model: 128}: the proxy preset at width 128, not merged with the default's
  # width-32 heads and FFN.
  assert load_config(EXPERIMENTS / "llm_gemini.yaml").evaluator.model == {"d_model": 128}
