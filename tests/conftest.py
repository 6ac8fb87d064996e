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


@pytest.fixture
def ray_local():
  """This test process connected to its private Ray instance (tests/ray_testing.py); skips without Ray."""
  from ray_testing import connect_private
  connect_private()


@pytest.fixture(scope="module")
def loopback_cluster():
  """A two-node Ray cluster on 127.0.0.1 (nodes "node_head" and "node_b", one CPU each), this process connected."""
  from ray_testing import LoopbackCluster, import_ray
  import_ray()
  cluster = LoopbackCluster()
  try:
    cluster.start_head()
    cluster.add_node("node_b")
    cluster.connect()
    yield cluster
  finally:
    cluster.stop()
