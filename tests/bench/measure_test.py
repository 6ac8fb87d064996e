"""Tests for `experiments/bench/_measure.py`'s compile helper: untimed compiles pass XLA options where the jaxlib
knows them and fall back to a plain compile where it does not; timed compiles never pass them."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

import _measure  # noqa: E402


def _matmul_inputs():
  rng = np.random.default_rng(0)
  return jnp.asarray(rng.standard_normal((8, 8), np.float32)), jnp.asarray(rng.standard_normal((8, 8), np.float32))


@pytest.mark.parametrize("options", [_measure.UNTIMED_COMPILE_OPTIONS, {"xla_no_such_option": 0}])
def test_untimed_compile_uses_known_options_and_survives_unknown_ones(monkeypatch, options):
  monkeypatch.setattr(_measure, "UNTIMED_COMPILE_OPTIONS", options)
  a, b = _matmul_inputs()
  _, seconds, result = _measure.compile_fn(lambda x, y: x @ y, (a, b), timed=False)
  np.testing.assert_allclose(result, np.asarray(a) @ np.asarray(b), rtol=1e-5, atol=1e-5)
  assert seconds > 0


def test_timed_compile_passes_no_options(monkeypatch):
  monkeypatch.setattr(_measure, "UNTIMED_COMPILE_OPTIONS", {"xla_no_such_option": 0})
  seen = []
  real = jax.stages.Lowered.compile
  monkeypatch.setattr(jax.stages.Lowered, "compile", lambda self, *a, **kw: seen.append(kw) or real(self, *a, **kw))
  a, b = _matmul_inputs()
  _measure.compile_fn(lambda x, y: x + y, (a, b))
  _measure.compile_fn(lambda x, y: x - y, (a, b), timed=False)
  assert seen == [{}, {"compiler_options": {"xla_no_such_option": 0}}, {}]  # the last: the fallback
