"""Tests for aira_jax.compose.evaluator (and the host-side helpers of programs.py): scores, determinism, the
de-duplication key, invalid layouts, one program per task in switch mode, divergence, whose fault a failure
is (the layout's or the evaluator's), Ctrl-C, config errors, and the learning-rate schedule and batch sampler.

The model is tiny and one evaluator serves the module, so its switch program compiles once. It gets a single
device: the evaluator hands each evaluation the next device of its pool, and each of the 8 fake CPU devices
of conftest.py would compile the program again.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aira_jax.agents.evaluation import EvalResult
from aira_jax.compose.config import ComposeConfig, ConfigError, EvaluatorConfig, SearchConfig, validate
from aira_jax.compose.evaluator import Evaluation, LayoutEvaluator, proxy_tasks
from aira_jax.compose import programs
from aira_jax.compose.programs import TrainingProgram, cosine_lr, sample_batches
from aira_jax.faults import InfrastructureError, Interrupted, request_stop, stop_on_ctrl_c
from aira_jax.layout import Layout
from aira_jax.tasks.base import IGNORE, Split, accuracy, cross_entropy

TASK = "in_context_recall"
DEPTH = 4
SPACE = "AM"
CONFIG = EvaluatorConfig(task="mad-lite", mad_tasks=(TASK,), steps=3, batch_size=4, eval_examples=8,
                         model={"d_model": 16, "num_heads": 2, "ffn_dim": 32, "ssm_head_dim": 8})


@pytest.fixture(scope="module")
def evaluator():
  return LayoutEvaluator(CONFIG, space=SPACE, depth=DEPTH, devices=jax.devices()[:1])


@pytest.fixture
def scores(monkeypatch):
  """Every dict `TrainingProgram.score` returns ({"loss", "accuracy"} on the validation rows), in order."""
  recorded = []
  original = TrainingProgram.score

  def spy(self, *args):
    out = original(self, *args)
    recorded.append(out)
    return out

  monkeypatch.setattr(TrainingProgram, "score", spy)
  return recorded


def test_the_test_config_is_valid():
  validate(ComposeConfig(search=SearchConfig(space=SPACE, depth=DEPTH), evaluator=CONFIG))
  evaluator = LayoutEvaluator(CONFIG, space=SPACE, depth=DEPTH)  # builds no program yet
  assert evaluator.base_config.d_model == 16 and evaluator.base_config.ffn_dim == 32
  assert evaluator.mode == "switch"  # "auto" is switch
  assert evaluator.metric_name == "mad_score" and not evaluator.lower_is_better
  assert evaluator.default_workers() == 1  # CPU
  assert evaluator._programs == {}


def test_evaluate_gives_a_score(evaluator, scores):
  evaluation = evaluator.evaluate("AMAM")
  assert isinstance(evaluation, Evaluation)
  assert not evaluation.is_buggy and evaluation.error is None
  assert evaluation.layout == "AMAM" and evaluation.seed == CONFIG.seed
  assert list(evaluation.per_task) == [TASK]
  assert math.isfinite(evaluation.metric) and 0.0 <= evaluation.metric <= 1.0
  assert evaluation.metric == pytest.approx(np.mean(list(evaluation.per_task.values())))
  assert evaluation.seconds > 0 and evaluation.compile_seconds >= 0
  # The fitness is the accuracy on the validation rows, and the model did train (finite validation loss).
  (last,) = scores
  assert evaluation.per_task[TASK] == last["accuracy"]
  assert math.isfinite(last["loss"]) and last["loss"] > 0


def test_same_layout_and_seed_repeat_exactly(evaluator, scores):
  first = evaluator.evaluate("AAMM", seed=5)
  second = evaluator.evaluate("AAMM", seed=5)
  other_seed = evaluator.evaluate("AAMM", seed=6)
  assert first.metric == second.metric and first.per_task == second.per_task
  assert second.seed == 5 and other_seed.seed == 6
  assert scores[0] == scores[1]  # bit-identical validation loss and accuracy
  # Another seed gives other parameters and batches: the loss moves, so the equality above can fail.
  assert scores[2]["loss"] != scores[0]["loss"]


def test_key_is_the_canonical_layout(evaluator):
  assert evaluator.key("2A+2M") == evaluator.key("AAMM") == "AAMM"
  assert evaluator.key(" A M A M ") == "AMAM"
  assert evaluator.key("AMAM") != evaluator.key("AAMM")
  with pytest.raises(ValueError, match="exactly 4"):
    evaluator.key("AM")


@pytest.mark.parametrize("text, fragment", [
    ("AAM", r"layout 2A\+1M has 3 layers; exactly 4 are required"),
    ("3A+3M", "has 6 layers; exactly 4 are required"),
    ("AMSM", "position 2: primitive 'S' is outside the search space AM"),
    ("AMXM", "unknown primitive 'X'"),
    ("", "empty layout text"),
])
def test_invalid_layouts_raise(evaluator, text, fragment):
  done = evaluator.done
  with pytest.raises(ValueError, match=fragment):
    evaluator.evaluate(text)
  assert evaluator.done == done  # refused before any training


def test_switch_mode_shares_one_program_and_the_layout_changes_the_loss(evaluator, scores):
  layouts = ["AMAM", "MMAA", "AAAA", "MMMM"]
  evaluations = [evaluator.evaluate(text, seed=1) for text in layouts]
  assert list(evaluator._programs) == [(TASK, None)]  # one program for every layout of the task
  assert not any(e.is_buggy for e in evaluations)
  losses = [s["loss"] for s in scores]
  # Same seed, so same initial parameters and batches: only the layout differs, and it changes the loss.
  assert len(set(losses)) == len(layouts), losses


def test_dedicated_mode_builds_a_program_per_layout():
  evaluator = LayoutEvaluator(dataclasses.replace(CONFIG, mode="dedicated"), space=SPACE, depth=DEPTH,
                              devices=jax.devices()[:1])
  first = evaluator.program(TASK, Layout.parse("AMAM"))
  second = evaluator.program(TASK, Layout.parse("2A+2M"))
  assert evaluator.program(TASK, Layout.parse("AMAM")) is first  # built once, then reused
  assert set(evaluator._programs) == {(TASK, "AMAM"), (TASK, "AAMM")}
  assert first.layout.text == "AMAM" and second.layout.text == "AAMM"
  with pytest.raises(ValueError, match="this dedicated program trains AMAM, not AAMM"):
    first.kinds(Layout.parse("AAMM"))
  assert first.compile_seconds == 0  # building a program compiles nothing; the first step does


def test_call_returns_an_eval_result(evaluator):
  result = evaluator("2A+2M")
  assert isinstance(result, EvalResult)
  assert not result.is_buggy and result.error is None
  assert result.metric == evaluator.evaluate("AAMM").metric
  assert "AAMM" in result.output and "fitness" in result.output and TASK in result.output
  assert result.seconds > 0


def test_on_evaluation_receives_every_evaluation(evaluator, monkeypatch):
  seen = []
  monkeypatch.setattr(evaluator, "on_evaluation", seen.append)
  done = evaluator.done
  first = evaluator.evaluate("AMAM")
  evaluator("MAMA")
  evaluator.evaluate("AMMA", seed=3)
  assert [e.layout for e in seen] == ["AMAM", "MAMA", "AMMA"]
  assert seen[0] is first
  assert [e.seed for e in seen] == [CONFIG.seed, CONFIG.seed, 3]
  assert evaluator.done == done + 3 and evaluator.running == 0


def test_a_huge_learning_rate_diverges(evaluator, monkeypatch):
  seen = []
  monkeypatch.setattr(evaluator, "on_evaluation", seen.append)
  # The learning rate is a runtime argument of the compiled step, so the same program serves this run.
  monkeypatch.setattr(evaluator, "config", dataclasses.replace(CONFIG, lr=1e30))
  evaluation = evaluator.evaluate("AMAM")
  assert evaluation.is_buggy and evaluation.metric is None and evaluation.per_task == {}
  assert evaluation.error.startswith(f"{TASK}: ")
  assert "diverged" in evaluation.error and f"at step {CONFIG.steps}" in evaluation.error
  assert evaluation.summary() == f"AMAM: failed: {evaluation.error}"
  assert seen == [evaluation]  # failures reach the callback too
  result = evaluator("AMAM")
  assert result.is_buggy and result.metric is None and "diverged" in result.error


def test_an_evaluator_fault_is_infrastructure_and_never_recorded(evaluator, monkeypatch):
  seen = []
  monkeypatch.setattr(evaluator, "on_evaluation", seen.append)

  def lost_device(*args):
    raise RuntimeError("INTERNAL: device lost")

  monkeypatch.setattr(evaluator, "_train_one", lost_device)
  running = evaluator.running
  with pytest.raises(InfrastructureError, match="the evaluator failed on AMAM: RuntimeError: INTERNAL: device lost"):
    evaluator.evaluate("AMAM")
  with pytest.raises(ValueError, match="exactly 4 are required"):  # an invalid layout is still its own fault
    evaluator.evaluate("AMA")
  assert seen == [] and evaluator.running == running


@pytest.mark.parametrize("mode", ["switch", "dedicated"])
def test_out_of_memory_is_the_layouts_fault_only_in_its_own_program(monkeypatch, mode):
  seen = []
  evaluator = LayoutEvaluator(dataclasses.replace(CONFIG, mode=mode), space=SPACE, depth=DEPTH,
                              devices=jax.devices()[:1], on_evaluation=seen.append)

  def out_of_memory(*args):
    raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9.9GiB.\nmore detail")

  monkeypatch.setattr(evaluator, "_train_one", out_of_memory)
  if mode == "switch":  # the switch program is the same for every layout: not this one's fault
    with pytest.raises(InfrastructureError, match="RESOURCE_EXHAUSTED"):
      evaluator.evaluate("AMAM")
    assert seen == []
  else:
    evaluation = evaluator.evaluate("AMAM")
    assert evaluation.is_buggy and evaluation.error == ("out of memory: RESOURCE_EXHAUSTED: Out of memory while "
                                                        "trying to allocate 9.9GiB.")
    assert seen == [evaluation]


def test_ctrl_c_stops_an_evaluation_between_steps_and_records_nothing(evaluator, monkeypatch):
  seen = []
  monkeypatch.setattr(evaluator, "on_evaluation", seen.append)
  with stop_on_ctrl_c():
    request_stop()
    with pytest.raises(Interrupted):
      evaluator.evaluate("AMAM")
  assert seen == [] and evaluator.running == 0


def test_a_classifier_task_is_refused():
  config = EvaluatorConfig(task="lra/listops", task_options={"num_train": 8, "num_validation": 8, "num_test": 8})
  with pytest.raises(ConfigError, match="'lra/listops' is a classification task"):
    LayoutEvaluator(config, space=SPACE, depth=DEPTH)


@pytest.mark.parametrize("changes, fragment", [
    (dict(mad_tasks=("in_context_recall", "telepathy")), r"evaluator\.mad_tasks: unknown \['telepathy'\]"),
    (dict(mad_tasks=()), r"evaluator\.mad_tasks: unknown \(empty\)"),
    (dict(task="no/such_task"), r"evaluator\.task 'no/such_task': unknown task"),
    (dict(task="mad/in_context_recall", task_options={"colour": "red"}), r"evaluator\.task 'mad/in_context_recall'"),
    (dict(model={"widht": 16}), r"evaluator\.model: unknown key\(s\) widht; allowed: vocab_size"),
    (dict(model={"d_model": 16, "num_heads": 3}), r"evaluator\.model: invalid ModelConfig"),
    (dict(preset="huge"), r"evaluator\.model: unknown model preset 'huge'"),
])
def test_bad_evaluator_configs_raise_config_error(changes, fragment):
  with pytest.raises(ConfigError, match=fragment):
    LayoutEvaluator(dataclasses.replace(CONFIG, **changes), space=SPACE, depth=DEPTH)


def test_a_single_task_uses_its_own_metric():
  config = dataclasses.replace(CONFIG, task="mad/in_context_recall", task_options={"seq_len": 16})
  tasks = proxy_tasks(config)
  assert list(tasks) == ["mad/in_context_recall"] and tasks["mad/in_context_recall"].spec.seq_len == 16
  evaluator = LayoutEvaluator(config, space=SPACE, depth=DEPTH)
  assert evaluator.metric_name == "accuracy" and not evaluator.lower_is_better


# --- programs.py host-side helpers. --------------------------------------------------------------------------


@pytest.mark.parametrize("total", [3, 10, 60, 101, 1000])
def test_cosine_lr_warms_up_then_decays_to_the_floor(total):
  peak = 3e-3
  rates = [cosine_lr(step, total, peak) for step in range(total)]
  warmup = max(int(0.1 * total), 1)
  np.testing.assert_allclose(rates[:warmup], [peak * (s + 1) / warmup for s in range(warmup)], rtol=1e-12)
  assert rates[warmup - 1] == pytest.approx(peak)
  assert rates[-1] == pytest.approx(0.1 * peak, rel=1e-12)
  after = np.array(rates[warmup - 1:])
  assert np.all(np.diff(after) <= 1e-18), "not monotone after warmup"
  assert max(rates) == pytest.approx(peak) and min(rates[warmup:]) >= 0.1 * peak * (1 - 1e-12)


def test_cosine_lr_options():
  assert cosine_lr(99, 100, 1.0, floor=0.0) == pytest.approx(0.0, abs=1e-12)
  assert cosine_lr(0, 100, 1.0, warmup_fraction=0.5) == pytest.approx(1 / 50)
  assert cosine_lr(49, 100, 1.0, warmup_fraction=0.5) == pytest.approx(1.0)
  assert cosine_lr(500, 100, 2.0) == pytest.approx(0.2)  # past the end it stays at the floor


def _split(rows: int) -> Split:
  ids = np.arange(rows, dtype=np.int32)
  return Split(inputs=np.stack([ids, ids + 100], axis=1), targets=np.stack([ids + 200, ids + 300], axis=1))


def test_sample_batches_shapes_and_rows():
  split = _split(40)
  batches = list(sample_batches(split, batch_size=4, steps=5, seed=0))
  assert len(batches) == 5
  for batch in batches:
    assert batch["inputs"].shape == (4, 2) and batch["targets"].shape == (4, 2)
    np.testing.assert_array_equal(batch["targets"][:, 0], batch["inputs"][:, 0] + 200)  # rows stay whole
  rows = np.concatenate([b["inputs"][:, 0] for b in batches])
  assert len(set(rows.tolist())) == 20  # 20 draws from 40 rows within one permutation: no repeats


def test_sample_batches_is_deterministic_per_seed():
  split = _split(50)
  draw = lambda seed: np.concatenate([b["inputs"][:, 0] for b in sample_batches(split, 8, 4, seed)])
  np.testing.assert_array_equal(draw(3), draw(3))
  assert not np.array_equal(draw(3), draw(4))


def test_sample_batches_wraps_around_a_small_split():
  split = _split(10)
  batches = list(sample_batches(split, batch_size=4, steps=7, seed=1))  # 28 rows from 10
  assert len(batches) == 7 and all(len(b["inputs"]) == 4 for b in batches)
  rows = np.concatenate([b["inputs"][:, 0] for b in batches])
  # Each block of 10 draws is a fresh permutation of the split; the last block is cut short.
  for start in (0, 10):
    assert sorted(rows[start:start + 10].tolist()) == list(range(10))
  assert len(set(rows[20:].tolist())) == 8


def test_sample_batches_with_a_batch_larger_than_the_split():
  batches = list(sample_batches(_split(3), batch_size=5, steps=2, seed=0))
  assert [len(b["inputs"]) for b in batches] == [5, 5]


def test_score_in_batches_matches_one_batch_with_padding_and_ignored_targets():
  rng = np.random.default_rng(0)
  inputs = rng.integers(0, 7, (10, 5)).astype(np.int32)
  targets = rng.integers(0, 7, (10, 5)).astype(np.int32)
  targets[rng.random((10, 5)) < 0.3] = IGNORE
  logits_table = rng.normal(size=(7, 7)).astype(np.float32)
  shapes = set()

  def score(batch):
    shapes.add(batch["inputs"].shape)
    logits = jnp.asarray(logits_table)[batch["inputs"]]
    return {"loss": cross_entropy(logits, jnp.asarray(batch["targets"])),
            "accuracy": accuracy(logits, jnp.asarray(batch["targets"]))}

  whole = {k: float(v) for k, v in score({"inputs": inputs, "targets": targets}).items()}
  batched = programs.score_in_batches(score, inputs, targets, batch_size=4)  # 4 + 4 + 2 padded rows
  assert batched == pytest.approx(whole, rel=1e-6)
  assert shapes == {(10, 5), (4, 5)}  # one shape for every batch, the last one padded
