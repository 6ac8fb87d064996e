"""The LRA design tasks: registry, seed mechanisms through the harness stages, broken candidates failing at the
right stage with a useful message, the trusted scorer (held-out labels never on disk, accuracies computed in the
parent), the entry point's records, logits channel and exit status, and learning on tiny ListOps.

The harness runs in-process (`run_stages`, its logits collected by a list sink) on data the scorer prepared; the
sandbox and `CandidateEvaluator` are tested elsewhere (pipeline_test.py, redteam_test.py).
"""

import concurrent.futures
import json
import math
import os

import numpy as np
import pytest

from aira_jax.design.channel import RESULTS_FD_ENV, ArrayReader
from aira_jax.design.mechanisms import MECHANISMS, mechanism_source
from aira_jax.design.records import RECORDS_ENV, read_records
from aira_jax.design.tasks import make_design_task
from aira_jax.design.tasks import lra_training as training
from aira_jax.design.tasks.lra_harness import main, run_stages

TINY = dict(num_train=64, num_validation=24, num_test=24, seq_len=32, min_length=4, max_depth=3, steps=3,
            batch_size=8, d_model=16, num_heads=2, num_layers=1, lowering="never")
TRUSTED_METRICS = {"val_accuracy", "val_accuracy_se", "test_accuracy", "chance", "test_chance"}
REPORTED = {"train_loss", "first_train_loss", "steps", "train_seconds", "compile_seconds", "mode"}


def _task(**overrides):
  return make_design_task("lra-listops", **{**TINY, **overrides})


def _prepared(tmp_path, task):
  """The task's trusted scorer with its data written to tmp_path/data."""
  scorer = task.make_scorer()
  scorer.prepare(tmp_path / "data")
  return scorer


def _run(tmp_path, source, stop_after=None, task=None, **overrides):
  """(stage results, trusted metrics or None): the scorer prepares tmp_path/data, the harness runs on
  tmp_path/work/model.py in-process, and the logits it sends are scored when the predict stage passed."""
  scorer = _prepared(tmp_path, task or _task(**overrides))
  work = tmp_path / "work"
  work.mkdir(exist_ok=True)
  (work / "model.py").write_text(source)
  sent = []
  results = run_stages(scorer.harness_settings(), work, stop_after=stop_after, sink=sent.append)
  if not (results and results[-1].stage == "predict" and results[-1].ok):
    assert not sent
    return results, None
  assert [(a.shape, a.dtype) for a in sent] == [((len(scorer.labels[name]), scorer.num_classes), np.float32)
                                                for name in ("validation", "test")]
  return results, scorer.metrics(dict(zip(("validation", "test"), sent)))


def _failed(results):
  assert results and not results[-1].ok, [(r.stage, r.ok) for r in results]
  assert all(r.ok for r in results[:-1])
  return results[-1].stage, results[-1].error


def test_listops_task_from_registry():
  task = make_design_task("lra-listops")
  assert (task.name, task.filename, task.metric, task.final_metric) == ("lra-listops", "model.py", "val_accuracy",
                                                                        "test_accuracy")
  assert task.harness_module == "aira_jax.design.tasks.lra_harness" and not task.lower_is_better
  assert task.template == mechanism_source("softmax")
  compile(task.template, "model.py", "exec")
  assert json.loads(json.dumps(dict(task.settings))) == dict(task.settings)
  assert "class Mixer(nnx.Module)" in task.description and "score_mod" in task.description
  assert "HYPERPARAMETERS" in make_design_task("lra-listops", setting="configurable").description


@pytest.mark.parametrize("name, hint", [("lra-text", "aclImdb"), ("lra-retrieval", "new_aan_pairs")])
def test_text_and_retrieval_need_data(name, hint, tmp_path):
  for path in (None, tmp_path / "missing"):
    with pytest.raises(ValueError, match=hint):
      make_design_task(name, path=path)


def _fake_aan(root):
  for name in ("train", "eval", "test"):
    rows = [f"{i % 2}\tp{i}\tq{i}\tpaper {i} cites\tpaper {i + 1} text" for i in range(12)]
    (root / f"new_aan_pairs.{name}.tsv").write_text("\n".join(rows) + "\n")


def _fake_imdb(root):
  for split in ("train", "test"):
    for label in ("pos", "neg"):
      folder = root / split / label
      folder.mkdir(parents=True)
      for i in range(10):
        (folder / f"{i}_1.txt").write_text(f"a {label} review number {i}")


@pytest.mark.parametrize("name, fake", [("lra-retrieval", _fake_aan), ("lra-text", _fake_imdb)])
def test_file_tasks_run_from_user_files(name, fake, tmp_path):
  files = tmp_path / "files"
  files.mkdir()
  fake(files)
  options = {k: v for k, v in TINY.items() if k not in ("min_length", "max_depth")}
  task = make_design_task(name, path=files, **options)
  results, _ = _run(tmp_path, mechanism_source("linear"), stop_after="numerics", task=task)
  assert [(r.stage, r.ok) for r in results] == [(s, True) for s in ("import", "interface", "compile", "numerics")]
  dual = name == "lra-retrieval"  # the second tower's inputs are public too; labels of held-out splits are not
  assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(
      [f"{split}_inputs{two}.npy" for split in ("train", "validation", "test") for two in ("", "2")[:1 + dual]]
      + ["train_targets.npy"])


def test_unknown_option_and_bad_setting_are_rejected():
  with pytest.raises(ValueError, match="unknown option"):
    make_design_task("lra-listops", num_epochs=3)
  with pytest.raises(ValueError, match="setting"):
    make_design_task("lra-listops", setting="free")


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_seed_mechanism_passes_up_to_numerics(name, tmp_path):
  results, _ = _run(tmp_path, mechanism_source(name), stop_after="numerics")
  assert [(r.stage, r.ok) for r in results] == [(s, True) for s in ("import", "interface", "compile", "numerics")]
  assert results[1].metrics["mode"] == MECHANISMS[name].mode


@pytest.mark.parametrize("name", ["local", "alibi", "ssm"])
def test_pallas_users_lower_for_tpu_and_cuda(name, tmp_path):
  results, _ = _run(tmp_path, mechanism_source(name), stop_after="lowering", lowering="auto")
  assert [(r.stage, r.ok) for r in results] == [("import", True), ("interface", True), ("lowering", True)]
  assert results[-1].metrics["tpu_kernels"] > 0
  # impl="auto" resolves as on each device: on a GPU the float32 SSD runs the XLA reference (measured faster than
  # the kernel's float32 path), so the ssm mechanism lowers for cuda without Triton kernels; attention uses them.
  assert (results[-1].metrics["cuda_kernels"] > 0) == (name != "ssm")


def test_plain_jnp_mixer_skips_lowering_and_runs_to_predict(tmp_path):
  results, metrics = _run(tmp_path, mechanism_source("linear"), lowering="auto")
  assert [(r.stage, r.ok) for r in results] == [(s, True) for s in ("import", "interface", "compile", "numerics",
                                                                     "train", "predict")]
  reported = results[-1].metrics
  assert set(reported) == REPORTED and reported["steps"] == TINY["steps"] and reported["mode"] == "mixer"
  assert set(metrics) == TRUSTED_METRICS and all(0.0 <= metrics[k] <= 1.0 for k in TRUSTED_METRICS)


MIXER = """
import jax, jax.numpy as jnp
from flax import nnx

class Mixer(nnx.Module):
  def __init__(self, d_model, num_heads, *, rngs):
    self.w = nnx.Param(jax.random.normal(rngs.params(), (d_model, d_model)) * d_model ** -0.5)
    self.calls = nnx.Variable(jnp.zeros((), jnp.int32))

  def __call__(self, x, mask):
    self.calls[...] = self.calls[...] + 1
    return {body}
"""
HOOKS_CLOSING_OVER_AN_ARRAY = """
import jax.numpy as jnp
KEEP = jnp.arange(4096) % 2 == 0

def mask_mod(q_idx, kv_idx, head):
  return KEEP[kv_idx] | (q_idx == kv_idx)
"""

BROKEN = {
    "syntax error": ("def Mixer(:\n", {}, "import", "SyntaxError"),
    "raises on import": ("import no_such_module_xyz\n", {}, "import", "no_such_module_xyz"),
    "exits on import": ("raise SystemExit(0)\n", {}, "import", "SystemExit"),
    "nothing defined": ("X = 1\n", {}, "interface", "neither a `Mixer` class nor"),
    "mixer not a module": ("class Mixer:\n  pass\n", {}, "interface", "nnx.Module"),
    "wrong output shape": (MIXER.format(body="x[:, :, :4]"), {}, "interface", "(batch, seq, d_model)"),
    "mask_mod returns float": ("def mask_mod(q_idx, kv_idx, head):\n  return (q_idx - kv_idx) * 1.0\n", {},
                               "interface", "mask_mod must return a bool"),
    "hyperparameter out of range": (mechanism_source("linear", hyperparameters={"lr": 0.05}).replace(
        "{'lr': 0.05}", "{'num_layers': 99, 'dropout': 0.1}"), {"setting": "configurable"}, "interface",
        "num_layers=99 is out of range"),
    "hook closes over an array": (HOOKS_CLOSING_OVER_AN_ARRAY, {"lowering": "auto"}, "lowering", "lowering for"),
    "NaN output": (MIXER.format(body="x @ self.w[...] * jnp.nan"), {}, "numerics", "non-finite"),
    "diverges in training": (MIXER.format(body="x @ self.w[...] + jnp.where(self.calls[...] > 2, jnp.nan, 0.0)"),
                             {}, "train", "diverged"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_candidate_fails_at_the_right_stage(case, tmp_path):
  source, overrides, stage, message = BROKEN[case]
  results, metrics = _run(tmp_path, source, **overrides)
  failed_stage, error = _failed(results)
  assert metrics is None
  assert failed_stage == stage, error
  assert message in error


def test_a_candidate_that_cannot_fit_the_device_fails_at_compile_before_any_data(tmp_path, monkeypatch):
  """The compile stage's preflight: XLA's memory analysis of the train step against the device's memory (1 KiB
  here) refuses the candidate with what it needs; the numerics stage, which reads the data, never runs."""
  monkeypatch.setattr("aira_jax.train.trainer.device_memory_bytes", lambda device: 1024)
  results, metrics = _run(tmp_path, mechanism_source("linear"))
  stage, error = _failed(results)
  assert (stage, metrics) == ("compile", None) and [r.stage for r in results] == ["import", "interface", "compile"]
  assert error.startswith("the candidate: does not fit: needs ") and "of 1.0 KiB per device" in error


def test_the_compile_stage_records_the_train_steps_flops_and_memory(tmp_path):
  results, _ = _run(tmp_path, mechanism_source("linear"), stop_after="compile")
  compiled = results[-1].metrics
  assert results[-1].stage == "compile" and results[-1].ok
  assert compiled["train_step_flops"] > 0 and compiled["train_step_memory_bytes"] > 0


def test_hyperparameters_honoured_when_configurable_and_ignored_when_fixed(tmp_path):
  source = mechanism_source("linear", hyperparameters={"d_model": 24, "num_heads": 3, "lr": 0.01})
  results, _ = _run(tmp_path, source, stop_after="interface", setting="configurable")
  assert results[-1].metrics["hyperparameters"]["d_model"] == 24
  assert results[-1].metrics["hyperparameters"]["lr"] == 0.01
  results, _ = _run(tmp_path, source, stop_after="interface")
  assert results[-1].metrics["hyperparameters"]["d_model"] == 16
  assert results[-1].metrics["ignored_hyperparameters"] == ["d_model", "lr", "num_heads"]


def test_entry_point_writes_records_and_fails_with_nonzero_status(tmp_path, monkeypatch):
  settings = _prepared(tmp_path, _task()).harness_settings()
  (tmp_path / "model.py").write_text("X = 1\n")
  (tmp_path / "settings.json").write_text(json.dumps(settings))
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv(RECORDS_ENV, str(tmp_path / "records.jsonl"))
  assert main(["settings.json"]) == 1
  records = read_records(tmp_path / "records.jsonl")
  assert [(r["stage"], r["event"], r.get("ok")) for r in records] == [
      ("import", "start", None), ("import", "end", True), ("interface", "start", None), ("interface", "end", False)]


def test_softmax_seed_learns_tiny_listops_above_chance(tmp_path, monkeypatch):
  """The whole pipeline through the entry point and the results channel: 2000 ListOps expressions of < 64
  tokens (depth <= 3), 250 steps of a 2-layer width-32 model; the logits read as the evaluator reads them and
  scored by the trusted scorer. Validation accuracy has been ~0.4 against a majority class of ~0.16."""
  task = _task(num_train=2000, num_validation=500, num_test=500, seq_len=64, min_length=10, max_depth=3, steps=250,
               batch_size=32, d_model=32, num_heads=4, num_layers=2, lr=3e-3)
  scorer = _prepared(tmp_path, task)
  work = tmp_path / "work"
  work.mkdir()
  (work / "model.py").write_text(mechanism_source("softmax"))
  (work / "settings.json").write_text(json.dumps(scorer.harness_settings()))
  monkeypatch.chdir(work)
  monkeypatch.setenv(RECORDS_ENV, str(work / "records.jsonl"))
  read_end, write_end = os.pipe()
  monkeypatch.setenv(RESULTS_FD_ENV, str(write_end))
  with os.fdopen(read_end, "rb") as stream, concurrent.futures.ThreadPoolExecutor(1) as pool:
    logits = pool.submit(scorer.read_logits, ArrayReader(stream))
    try:
      status = main(["settings.json"])
    finally:
      os.close(write_end)  # the reader sees the end of the channel
    logits = logits.result(timeout=60)
    assert ArrayReader(stream).drain() == 0  # nothing after the test logits
  assert status == 0
  ends = [r for r in read_records(work / "records.jsonl") if r["event"] == "end"]
  assert [r["stage"] for r in ends] == ["import", "interface", "compile", "numerics", "train", "predict"]
  reported = ends[-1]["metrics"]
  assert set(reported) == REPORTED and not TRUSTED_METRICS & set(reported)
  assert reported["steps"] == 250 and math.isfinite(reported["train_loss"]) and reported["mode"] == "mixer"
  assert reported["train_loss"] < reported["first_train_loss"] - 0.3
  score = scorer.metrics(logits)
  assert set(score) == TRUSTED_METRICS
  assert score["val_accuracy"] > score["chance"] + 0.1, score
  assert score["test_accuracy"] > score["test_chance"] + 0.1, score


def test_prepared_data_holds_no_held_out_labels(tmp_path):
  task = _task()
  scorer = _prepared(tmp_path, task)
  data = tmp_path / "data"
  assert sorted(p.name for p in data.iterdir()) == sorted(
      ["train_inputs.npy", "train_targets.npy", "validation_inputs.npy", "test_inputs.npy"])
  public, full = training.read_public_splits(data), training.load_splits(task.settings)
  for name in ("train", "validation", "test"):
    assert np.array_equal(public[name].inputs, full[name].inputs) and public[name].inputs2 is None
  assert np.array_equal(public["train"].targets, full["train"].targets)
  for name in ("validation", "test"):
    assert public[name].targets.shape == (TINY[f"num_{name}"],) and not public[name].targets.any()
    assert full[name].targets.any()  # so the zeros above are placeholders, not the labels
    assert np.array_equal(scorer.labels[name], full[name].targets)


def test_scorer_metrics_match_a_hand_computed_reference(tmp_path):
  task = _task()
  scorer = _prepared(tmp_path, task)
  full = training.load_splits(task.settings)
  majority = np.bincount(full["train"].targets, minlength=10).argmax()
  rng = np.random.default_rng(0)
  logits = {name: rng.normal(size=(TINY[f"num_{name}"], 10)).astype(np.float32) for name in ("validation", "test")}
  for name, split in (("validation", full["validation"]), ("test", full["test"])):
    rows = np.arange(0, len(split), 2)  # every other row right, the rest at random: an accuracy away from 0 and 1
    logits[name][rows, split.targets[rows]] += 100.0
  expected = {}
  for name, prefix in (("validation", "val_"), ("test", "test_")):
    labels = full[name].targets
    expected[f"{prefix}accuracy"] = sum(int(np.argmax(row) == y) for row, y in zip(logits[name], labels)) / len(labels)
  p, n = expected["val_accuracy"], TINY["num_validation"]
  expected["val_accuracy_se"] = math.sqrt(p * (1 - p) / n)
  expected["chance"] = float(np.mean(full["validation"].targets == majority))
  expected["test_chance"] = float(np.mean(full["test"].targets == majority))
  assert 0.5 <= p < 1.0
  assert scorer.metrics(logits) == pytest.approx(expected, abs=1e-12)
  perfect = {name: np.eye(10, dtype=np.float32)[full[name].targets] for name in ("validation", "test")}
  best = scorer.metrics(perfect)
  assert (best["val_accuracy"], best["test_accuracy"], best["val_accuracy_se"]) == (1.0, 1.0, 0.0)


def test_harness_settings_drop_the_data_options(tmp_path):
  task = _task()
  scorer = _prepared(tmp_path, task)
  settings = scorer.harness_settings()
  assert {"path", "min_length", "max_depth"} <= set(task.settings)
  assert not {"path", "min_length", "max_depth"} & set(settings)
  assert settings["data_dir"] == str(tmp_path / "data")
  assert {k: v for k, v in task.settings.items() if k not in ("path", "min_length", "max_depth")} == {
      k: v for k, v in settings.items() if k != "data_dir"}
  assert json.loads(json.dumps(settings)) == settings
  pixel = make_design_task("lra-pathfinder", num_train=8, num_validation=4, num_test=4)
  assert set(training.PATHFINDER_KEYS) <= set(pixel.settings)
  scorer = pixel.make_scorer()
  scorer.prepare(tmp_path / "pixel")
  assert set(scorer.harness_settings()) & set(training.PATHFINDER_KEYS) == {"image_size"}  # the generator's: gone

