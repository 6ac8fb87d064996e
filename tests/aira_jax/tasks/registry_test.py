"""Tests for the task interface (loss and accuracy with ignored targets, Split checks) and the registry."""

import jax.numpy as jnp
import numpy as np
import pytest

from aira_jax.tasks import IGNORE, Split, accuracy, cross_entropy, make_task, register_task, task_names


def test_cross_entropy_and_accuracy_skip_ignored_targets():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7))
  targets = rng.integers(0, 7, size=(2, 5))
  targets[0, 1] = targets[1, 4] = IGNORE
  keep = targets != IGNORE
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0]
  expected_loss = nll[keep].mean()
  expected_acc = (logits.argmax(-1) == targets)[keep].mean()
  assert float(cross_entropy(jnp.asarray(logits), jnp.asarray(targets))) == pytest.approx(expected_loss, rel=1e-5)
  assert float(accuracy(jnp.asarray(logits), jnp.asarray(targets))) == pytest.approx(expected_acc)
  all_ignored = jnp.full((2, 5), IGNORE)
  assert float(cross_entropy(jnp.asarray(logits), all_ignored)) == 0.0


def test_split_checks_shapes():
  Split(np.zeros((3, 4), np.int32), np.zeros((3,), np.int32))
  with pytest.raises(ValueError, match="inputs must be"):
    Split(np.zeros((3,), np.int32), np.zeros((3,), np.int32))
  with pytest.raises(ValueError, match="2 targets for 3 examples"):
    Split(np.zeros((3, 4), np.int32), np.zeros((2,), np.int32))


def test_registry_names_errors_and_duplicates():
  names = task_names()
  for expected in ("mqar", "text/bytes", "lra/listops", "mad/in_context_recall"):
    assert expected in names
  with pytest.raises(ValueError, match="unknown task 'nope'; known tasks: .*mqar"):
    make_task("nope")
  with pytest.raises(ValueError, match="already registered"):
    register_task("mqar", lambda: None)
