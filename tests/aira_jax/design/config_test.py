"""The design config: defaults, YAML studies, overrides, validation, Literal choices and --help."""

import dataclasses
import pathlib

import pytest

from aira_jax.config_io import choices
from aira_jax.design.config import (ConfigError, DesignAgentConfig, DesignConfig, SandboxConfig, from_dict, load_config,
                                    validate)

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
    ("search.agents=[greedy, greedy]", "distinct"),
    ("search.steps_per_agent=null", "budget"),
    ("sandbox.memory_mb=100", "memory_mb"),
    ("sandbox.isolation=docker", "sandbox.isolation"),
    ("search.steps_per_agent=0", r"search\.steps_per_agent must be positive"),
    ("search.wall_clock_s=-5", r"search\.wall_clock_s must be positive"),
    ("search.agents=[{name: a, llm: 'bogus:x'}]", "unknown LLM backend 'bogus'"),
    ("search.agents=[{name: a, llm: 'openai:m', llm_options: {retries: 3}}]", r"\['retries'\] are not options"),
    ("search.bogus=1", "unknown key"),
    ("search.analyze_every=-1", r"search\.analyze_every must be >= 0 \(0 = never\), got -1"),
])
def test_invalid_configs_name_the_key(override, key):
  with pytest.raises(ConfigError, match=key):
    load_config(overrides=[override])


@pytest.mark.parametrize("args, fragment", [
    (["search.task=lra-text"], "error: search.task 'lra-text': lra-text needs path="),
    (["serch"], "error: unexpected argument 'serch': overrides look like key=value; commands: run, report"),
    (["search.agents=[{name: a, llm: 'scripted:missing.jsonl'}]"], "the scripted replies file 'missing.jsonl'"),
    (["executor.backend=ray", "sandbox.isolation=process"],
     "error: executor.backend=ray with sandbox.isolation=process: a candidate outside bwrap's network namespace"),
])
def test_cli_errors_are_one_line_before_the_run_directory_exists(tmp_path, capsys, args, fragment):
  from aira_jax.design.cli import main
  assert main([f"run_dir={tmp_path / 'runs'}", *args]) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith("error: ") and fragment in line
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, message", [
    ("sandbox.isolation=docker", "sandbox.isolation: must be one of auto, bwrap, process; got 'docker'"),
    ("search.agents=[{name: a, edits: patch}]", "search.agents[0].edits: must be one of whole, diff; got 'patch'"),
    ("search.agents=[greedy, {name: b, policy: beam}]",
     "search.agents[1].policy: must be one of one_shot, greedy, mcts, evolutionary; got 'beam'"),
])
def test_a_bad_choice_is_one_line_naming_the_key_the_value_and_the_choices(override, message):
  with pytest.raises(ConfigError) as info:
    load_config(overrides=[override])
  assert str(info.value) == message


def test_choices_of_a_config_built_in_python_are_checked_by_validate():
  with pytest.raises(ConfigError, match=r"^sandbox\.isolation: must be one of auto, bwrap, process; got 'vm'$"):
    validate(dataclasses.replace(DesignConfig(), sandbox=SandboxConfig(isolation="vm")))


def test_choices_list_the_literal_settings_and_mirror_the_registries():
  from aira_jax.agents.policies import POLICIES
  from aira_jax.design.sandbox import ISOLATIONS
  found = choices(DesignConfig)
  assert found == {"search.agents[].policy": ("one_shot", "greedy", "mcts", "evolutionary"),
                   "search.agents[].edits": ("whole", "diff"), "sandbox.isolation": ("auto", "bwrap", "process"),
                   "executor.backend": ("local", "ray")}
  assert set(found["search.agents[].policy"]) == set(POLICIES)
  assert set(found["sandbox.isolation"]) == set(ISOLATIONS)
  for isolation in ISOLATIONS:
    assert load_config(overrides=[f"sandbox.isolation={isolation}"]).sandbox.isolation == isolation


def test_help_lists_the_choices(capsys):
  from aira_jax.design.cli import main
  with pytest.raises(SystemExit) as info:
    main(["--help"])
  assert info.value.code == 0
  lines = capsys.readouterr().out.splitlines()
  assert "  sandbox.isolation: auto | bwrap | process" in lines
  assert "  search.agents[].edits: whole | diff" in lines
