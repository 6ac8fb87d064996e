"""Every study in experiments/compose/ loads as a valid config, and tiny.yaml is the default run written out."""

import pathlib

import pytest

from aira_jax.compose.config import ComposeConfig, load_config

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "compose"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_study_loads(path):
  assert isinstance(load_config(path), ComposeConfig)


def test_tiny_yaml_is_the_default_run():
  assert load_config(EXPERIMENTS / "tiny.yaml") == ComposeConfig()
