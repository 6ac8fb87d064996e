"""Tests for the training loop: overfitting, every budget, divergence, evaluation, logging and data end."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax.models import LanguageModel, preset_config
from aira_jax.train import MeshConfig, OptimizerConfig, make_mesh, make_optimizer
from aira_jax.train.loggers import JsonlLogger
from aira_jax.train import trainer as trainer_module
from aira_jax.train.trainer import Budget, train


def fixed_batch(batch=8, seq=16, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, 64, (batch, seq + 1)).astype(np.int32)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}


def setup(lr=3e-3, layout="AMSM"):
  model = LanguageModel(layout, preset_config("tiny", ssm_chunk_size=8), rngs=nnx.Rngs(0))
  return model, OptimizerConfig(name="adamw", lr=lr, weight_decay=0.0, warmup_steps=0, schedule="constant")


def test_overfits_a_fixed_batch_on_a_mesh_and_logs(tmp_path):
  model, optimizer = setup()
  batch = fixed_batch()
  logger = JsonlLogger(tmp_path / "metrics.jsonl")
  result = train(model, itertools.repeat(batch), optimizer, Budget(max_steps=60),
                 mesh=make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)), logger=logger, log_every=20)
  logger.close()
  assert result.status == "completed" and result.stop_reason.startswith("step budget") and result.steps == 60
  assert result.final_metrics["loss"] < 0.5 * np.log(64)  # from ~ln(64) at init
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines] == [20, 40, 60]
  assert lines[-1]["metrics"]["loss"] < lines[0]["metrics"]["loss"]
  assert result.tokens == 60 * batch["inputs"].size and result.compile_seconds > 0


@pytest.mark.parametrize("budget, expected_steps", [
    (Budget(max_tokens=1000), 8),  # 128 tokens per step: the 8th step passes 1000
    (Budget(max_flops=35.0), 4),  # 10 FLOPs per step (given)
])
def test_token_and_flop_budgets(budget, expected_steps):
  model, optimizer = setup(layout="AM")
  result = train(model, itertools.repeat(fixed_batch()), optimizer, budget, flops_per_step=10.0)
  assert result.steps == expected_steps and result.status == "completed"


def test_the_step_compiles_once_however_many_steps_run():
  compiles = []
  listener = lambda event, secs, **kw: compiles.append(event) if "backend_compile" in event else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  counts = {}
  try:
    for steps in (1, 2, 5):  # the first run also compiles what every run shares (e.g. optimizer init)
      model, optimizer = setup(layout="AM")
      before = len(compiles)
      train(model, itertools.repeat(fixed_batch()), optimizer, Budget(max_steps=steps))
      counts[steps] = len(compiles) - before
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert counts[2] == counts[5] == 1, counts


def test_time_budget_starts_after_the_compiling_step():
  model, optimizer = setup(layout="AM")
  result = train(model, itertools.repeat(fixed_batch()), optimizer, Budget(max_seconds=0.3))
  assert result.stop_reason.startswith("time budget") and result.steps >= 2
  assert 0.3 <= result.seconds < 5.0


def test_divergence_stops_the_run():
  model, optimizer = setup(layout="AM")
  model.embed[...] = model.embed[...].at[0, 0].set(jnp.nan)
  result = train(model, itertools.repeat(fixed_batch()), optimizer, Budget(max_steps=50))
  assert result.status == "diverged" and result.steps == 1 and "non-finite loss" in result.stop_reason


def test_periodic_evaluation_and_data_exhaustion():
  model, optimizer = setup(layout="AM")
  calls = []

  def evaluate(params):
    calls.append(1)
    return {"eval_loss": float(len(calls))}

  result = train(model, iter([fixed_batch(seed=s) for s in range(5)]), optimizer, Budget(max_steps=100),
                 eval_every=2, evaluate=evaluate)
  assert result.status == "data exhausted" and result.steps == 5
  assert [step for step, _ in result.evals] == [2, 4, 5]


def test_bad_budgets():
  with pytest.raises(ValueError, match="at least one budget"):
    Budget()
  model, optimizer = setup(layout="AM")
  with pytest.raises(ValueError, match="max_flops needs flops_per_step"):
    train(model, itertools.repeat(fixed_batch()), optimizer, Budget(max_flops=1.0))


def test_a_transformation_whose_schedule_is_an_input_needs_it():
  model, config = setup()
  with pytest.raises(ValueError, match="pass the OptimizerConfig itself"):
    train(model, itertools.repeat(fixed_batch()), make_optimizer(config, nnx.split(model)[1]), Budget(max_steps=1))


def test_a_run_that_cannot_fit_is_refused_before_training():
  """The preflight compares the compiled step's memory with the device's (1 KiB here): no step runs, and the
  result says what it needs."""
  model, config = setup()
  drawn = []
  batches = (drawn.append(1) or fixed_batch() for _ in range(10))
  result = train(model, batches, config, Budget(max_steps=5), device_memory=1024)
  assert result.status == "does not fit" and result.steps == 0 and result.final_metrics == {}
  assert result.stop_reason.startswith("does not fit: needs ") and "of 1.0 KiB per device" in result.stop_reason
  assert len(drawn) == 1  # one batch read for its shapes, none trained on
  fits = train(model, itertools.repeat(fixed_batch()), config, Budget(max_steps=2), device_memory=1 << 34,
               analytic_flops_per_step=1.0)
  assert fits.status == "completed" and fits.preflight.peak_memory_bytes < 1 << 34
  assert fits.preflight.flops_ratio > 2 and "XLA counts" in fits.notes[0]  # 1 FLOP is far below XLA's count


def test_the_schedule_of_an_optimizer_config_runs_over_the_budget(monkeypatch):
  """Given an OptimizerConfig, the loop feeds lr_multiplier(config, step, budget steps) into the step."""
  model, _ = setup()
  seen = []
  original = trainer_module.lr_multiplier
  monkeypatch.setattr(trainer_module, "lr_multiplier", lambda *args: seen.append(args[1:]) or original(*args))
  config = OptimizerConfig(lr=1e-3, warmup_fraction=0.25, total_steps=999)
  result = train(model, itertools.repeat(fixed_batch()), config, Budget(max_steps=8))
  assert result.status == "completed" and seen == [(step, 8) for step in range(8)]
