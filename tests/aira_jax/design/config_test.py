"""The design config: defaults, YAML studies, overrides, validation."""

import pathlib

import pytest

from aira_jax.design.config import ConfigError, DesignAgentConfig, DesignConfig, from_dict, load_config

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "design"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_studies_load(path):
  assert isinstance(load_config(path), DesignConfig)


def test_tiny_yaml_is_the_default_and_round_trips():
  assert load_config(EXPERIMENTS / "tiny.yaml") == DesignConfig()
  assert from_dict(DesignConfig().to_dict()) == DesignConfig()


def test_overrides_and_agent_shorthand():
  config = load_config(overrides=["search.agents=[greedy, {name: g, policy: mcts, llm: 'scripted:x', edits: diff}]",
                                  "search.task_options.setting=configurable", "sandbox.timeout_s=30"])
  assert config.search.agents[0] == DesignAgentConfig("greedy", "greedy")
  assert config.search.agents[1].edits == "diff" and config.search.task_options == {"setting": "configurable"}
  assert config.sandbox.timeout_s == 30.0


@pytest.mark.parametrize("override, key", [
    ("search.agents=[{name: a, policy: nope}]", "policy"),
    ("search.agents=[{name: a, policy: greedy, policy_options: {num_drafts: -1}}]", "policy_options"),
    ("search.agents=[a, a]", "distinct"),
    ("search.steps_per_agent=null", "budget"),
    ("sandbox.memory_mb=100", "memory_mb"),
    ("sandbox.isolation=docker", "sandbox.isolation"),
    ("search.steps_per_agent=0", r"search\.steps_per_agent must be positive"),
    ("search.wall_clock_s=-5", r"search\.wall_clock_s must be positive"),
    ("search.agents=[{name: a, llm: 'bogus:x'}]", "unknown LLM backend 'bogus'"),
    ("search.agents=[{name: a, llm: 'openai:m', llm_options: {retries: 3}}]", r"\['retries'\] are not options"),
    ("search.bogus=1", "unknown key"),
])
def test_invalid_configs_name_the_key(override, key):
  with pytest.raises(ConfigError, match=key):
    load_config(overrides=[override])


@pytest.mark.parametrize("args, fragment", [
    (["search.task=lra-text"], "error: search.task 'lra-text': lra-text needs path="),
    (["serch"], "error: unexpected argument 'serch': overrides look like key=value; commands: run, report"),
    (["search.agents=[{name: a, llm: 'scripted:missing.jsonl'}]"], "the scripted replies file 'missing.jsonl'"),
])
def test_cli_errors_are_one_line_before_the_run_directory_exists(tmp_path, capsys, args, fragment):
  from aira_jax.design.cli import main
  assert main([f"run_dir={tmp_path / 'runs'}", *args]) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("error: ") and fragment in line
  assert not (tmp_path / "runs").exists()
