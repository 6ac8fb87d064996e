"""Every compose run config in experiments/compose/ loads as a valid config, and tiny.yaml is the default run
written out. (calibration.yaml is the proxy calibration study's own format, read by
experiments/bench/proxy_calibration.py and tested with it.)"""

import pathlib

import pytest

from aira_jax.compose.config import ComposeConfig, load_config

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "compose"


STUDY_FILES = {"calibration.yaml"}


@pytest.mark.parametrize("path", sorted(p for p in EXPERIMENTS.glob("*.yaml") if p.name not in STUDY_FILES),
                         ids=lambda p: p.name)
def test_study_loads(path):
  assert isinstance(load_config(path), ComposeConfig)


def test_tiny_yaml_is_the_default_run():
  assert load_config(EXPERIMENTS / "tiny.yaml") == ComposeConfig()
