"""Tests for aira_jax.compose.evaluator (and programs.py): scores, determinism, the de-duplication key, invalid
layouts, one program per task in switch mode, switch and dedicated modes agreeing, divergence, whose fault a
failure is (the layout's or the evaluator's: a program the preflight refuses), Ctrl-C and config errors.

The model is tiny and one evaluator serves the module, so its switch program compiles once. It gets a single
device: the evaluator hands each evaluation the next device of its pool, and each of the 8 fake CPU devices
of conftest.py would compile the program again.
"""

import dataclasses
import math

import jax
import numpy as np
import pytest

from aira_jax.agents.evaluation import EvalResult
from aira_jax.compose.config import ComposeConfig, ConfigError, EvaluatorConfig, SearchConfig, validate
from aira_jax.compose.evaluator import Evaluation, LayoutEvaluator, proxy_tasks
from aira_jax.compose.programs import LayoutProgram
from aira_jax.faults import InfrastructureError, Interrupted, request_stop, stop_on_ctrl_c
from aira_jax.layout import Layout

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
  """Every dict `LayoutProgram.score` returns ({"loss", "accuracy"} on the validation rows), in order."""
  recorded = []
  original = LayoutProgram.score

  def spy(self, *args):
    out = original(self, *args)
    recorded.append(out)
    return out

  monkeypatch.setattr(LayoutProgram, "score", spy)
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
  assert list(evaluator._programs) == [(TASK, None, jax.devices()[0])]  # one program for every layout of the task
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
  device = jax.devices()[0]
  assert set(evaluator._programs) == {(TASK, "AMAM", device), (TASK, "AAMM", device)}
  assert first.layout.text == "AMAM" and second.layout.text == "AAMM"
  with pytest.raises(ValueError, match="this dedicated program trains AMAM, not AAMM"):
    first.model_inputs(Layout.parse("AAMM"))
  assert first.compile_seconds == 0  # building a program compiles nothing; the first run does


def test_switch_and_dedicated_modes_train_the_same_function(evaluator, scores):
  """Both start from the dedicated model's initialisation and run the same loop, so the validation loss of a
  layout agrees up to floating-point order (it differs between layouts by far more)."""
  dedicated = LayoutEvaluator(dataclasses.replace(CONFIG, mode="dedicated"), space=SPACE, depth=DEPTH,
                              devices=jax.devices()[:1])
  for text in ("AMAM", "MMAA"):
    evaluator.evaluate(text, seed=3)
    dedicated.evaluate(text, seed=3)
  switch_amam, dedicated_amam, switch_mmaa, dedicated_mmaa = (s["loss"] for s in scores)
  assert dedicated_amam == pytest.approx(switch_amam, rel=1e-5)
  assert dedicated_mmaa == pytest.approx(switch_mmaa, rel=1e-5)
  assert abs(switch_amam - switch_mmaa) > 100 * abs(switch_amam - dedicated_amam)


@pytest.mark.parametrize("optimizer", [dict(weight_decay=0.1), dict(name="muon", weight_decay=0.1)],
                         ids=["adamw", "muon"])
def test_switch_and_dedicated_modes_agree_under_weight_decay_and_muon(optimizer, scores):
  """The switch model stacks each weight along a leading "layers" axis: weight decay and Muon treat a stacked
  weight as the per-layer weights it holds (a stacked norm scale is not decayed, a stacked matrix is
  orthogonalised per layer), so both modes still train the same function."""
  config = dataclasses.replace(CONFIG, optimizer=dataclasses.replace(CONFIG.optimizer, **optimizer))
  for mode in ("switch", "dedicated"):
    LayoutEvaluator(dataclasses.replace(config, mode=mode), space=SPACE, depth=DEPTH,
                    devices=jax.devices()[:1]).evaluate("AMMA", seed=2)
  switch, dedicated = (s["loss"] for s in scores)
  assert dedicated == pytest.approx(switch, rel=1e-5)


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


def test_a_huge_learning_rate_diverges():
  seen = []
  huge = dataclasses.replace(CONFIG.optimizer, lr=1e30)
  evaluator = LayoutEvaluator(dataclasses.replace(CONFIG, optimizer=huge), space=SPACE, depth=DEPTH,
                              devices=jax.devices()[:1], on_evaluation=seen.append)
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


@pytest.mark.parametrize("mode", ["switch", "dedicated"])
def test_a_program_the_preflight_refuses_fails_before_training(monkeypatch, mode):
  """A device with 1 KiB: the compiled step needs more, so no step runs; in dedicated mode it is the layout's
  failure ("does not fit: needs X of 1.0 KiB"), in switch mode the evaluator's (every layout shares it)."""
  seen, steps = [], []
  monkeypatch.setattr("aira_jax.train.trainer.device_memory_bytes", lambda device: 1024)
  evaluator = LayoutEvaluator(dataclasses.replace(CONFIG, mode=mode), space=SPACE, depth=DEPTH,
                              devices=jax.devices()[:1], on_evaluation=seen.append)
  original = LayoutProgram.init
  monkeypatch.setattr(LayoutProgram, "init", lambda self, *a: steps.append(a) or original(self, *a))
  if mode == "switch":
    with pytest.raises(InfrastructureError, match=r"does not fit: needs .* of 1\.0 KiB per device.*mode=dedicated"):
      evaluator.evaluate("AMAM")
    assert seen == []
  else:
    evaluation = evaluator.evaluate("AMAM")
    assert evaluation.is_buggy and evaluation.metric is None
    assert evaluation.error.startswith("AMAM: does not fit: needs ")
    assert "of 1.0 KiB per device" in evaluation.error and seen == [evaluation]
  assert len(steps) == 1  # initialised once, refused at the compile: no training step ran


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
