"""Test set-up shared by the whole suite.

- 8 fake CPU devices, so sharding tests run on a laptop (set before JAX starts).
- Strict JAX: implicit rank promotion raises.
- Markers `slow`, `gpu`, `tpu` are skipped unless asked for with --run-slow / --run-gpu / --run-tpu.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402  (must come after XLA_FLAGS)
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

_OPT_IN_MARKERS = ("slow", "gpu", "tpu")


def pytest_addoption(parser):
  for marker in _OPT_IN_MARKERS:
    parser.addoption(f"--run-{marker}", action="store_true", default=False, help=f"run tests marked {marker}")


def pytest_collection_modifyitems(config, items):
  for marker in _OPT_IN_MARKERS:
    if config.getoption(f"--run-{marker}"):
      continue
    skip = pytest.mark.skip(reason=f"marked {marker}; run with --run-{marker}")
    for item in items:
      if marker in item.keywords:
        item.add_marker(skip)
