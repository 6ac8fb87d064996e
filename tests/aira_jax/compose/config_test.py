"""Tests for aira_jax.compose.config: defaults, the to_dict / from_dict round trip, YAML files with dotted
overrides (numbers, lists, null, agents), and the ConfigError messages that name the offending key."""

import dataclasses

import pytest
import yaml

from aira_jax.compose.config import (AgentConfig, ComposeConfig, ConfigError, EvaluatorConfig, ScaleConfig,
                                     SearchConfig, apply_overrides, from_dict, load_config, validate)


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
  config = load_config(overrides=["search.depth=8", "evaluator.lr=1e-2", "search.wall_clock_s=1e3",
                                  "scale.budgets=[1e10,2e10]", "scale.target_loss=2.5", "search.workers=null",
                                  "search.max_llm_tokens=100000", "search.shared_tree=true"])
  assert config.search.depth == 8 and isinstance(config.search.depth, int)
  assert config.evaluator.lr == 0.01
  assert config.search.wall_clock_s == 1000.0 and isinstance(config.search.wall_clock_s, float)
  assert config.scale.budgets == (1e10, 2e10)
  assert all(isinstance(b, float) for b in config.scale.budgets)
  assert config.scale.target_loss == 2.5
  assert config.search.workers is None
  assert config.search.max_llm_tokens == 100_000
  assert config.search.shared_tree is True


def test_exponent_without_a_dot_becomes_a_float():
  # YAML 1.1 reads "1e12" (no dot) as a string; float fields must still accept it.
  assert yaml.safe_load("1e12") == "1e12"
  config = load_config(overrides=["scale.budgets=[1e12, 2e12]", "evaluator.lr=3e-3"])
  assert config.scale.budgets == (1e12, 2e12)
  assert config.evaluator.lr == 0.003


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
    ("evaluator.lr=fast", r"evaluator\.lr: expected a number"),
    ("scale.budgets=[1e10, big]", r"scale\.budgets\[1\]: expected a number"),
    ("search.shared_tree=1", r"search\.shared_tree: expected true or false"),
    ("evaluator.model=[1, 2]", r"evaluator\.model: expected a mapping"),
    ("search=3", r"search: expected a mapping of SearchConfig fields"),
    ("search.agents=[3]", r"search\.agents\[0\]: expected a mapping of AgentConfig fields"),
])
def test_wrong_type_names_the_key(override, fragment):
  with pytest.raises(ConfigError, match=fragment):
    load_config(overrides=[override])


def test_bool_is_not_a_number():
  with pytest.raises(ConfigError, match=r"evaluator\.lr"):
    load_config(overrides=["evaluator.lr=true"])


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
    (["search.agents=[{name: a, policy: bogus}]"], r"search\.agents\[a\]\.policy: unknown 'bogus'; known: .*greedy"),
    (["search.agents=[greedy, greedy]"], r"search\.agents: names must be distinct"),
    (["search.agents=[{name: x, policy: greedy}, {name: x, policy: mcts}]"], "names must be distinct"),
    (["search.steps_per_agent=null"], "search: give at least one budget"),
    (["search.workers=0"], r"search\.workers must be >= 1"),
    (["scale.budgets=[1e10]"], r"scale\.budgets: a frontier fit needs at least 2 budgets"),
    (["scale.budgets=1e10"], r"scale\.budgets: a frontier fit needs at least 2 budgets"),
    (["scale.budgets=[1e10, -1e10]"], r"scale\.budgets must be positive"),
    (["scale.widths=[8, 16]"], r"scale\.widths: a parabola fit needs at least 3 sizes"),
    (["evaluator.mode=fast"], r"evaluator\.mode must be auto, switch or dedicated, got 'fast'"),
    (["evaluator.lr=0"], r"evaluator\.lr must be positive"),
    (["evaluator.steps=0"], r"evaluator\.steps"),
    (["scale.trainer=gpu"], r"scale\.trainer must be auto, switch or sharded, got 'gpu'"),
    (["scale.methods=[stretch, grow]"], r"scale\.methods: unknown 'grow'; allowed: stretch, stack"),
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
    ("scale.baselines=[foo]", r"scale\.baselines: unknown 'foo'; choose from llama, composer"),
    ("scale.target_depth=1", r"scale\.target_depth=1 is below search\.depth=16"),
    ("evaluator.task=bogus", r"evaluator\.task: unknown 'bogus'; choose mad-lite or one of"),
    ("evaluator.mad_tasks=[nope]", r"evaluator\.mad_tasks: unknown \['nope'\]"),
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
