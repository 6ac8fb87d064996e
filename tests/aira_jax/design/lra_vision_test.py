"""The pixel LRA design tasks, "lra-pathfinder" (generated or released PNGs) and "lra-image" (CIFAR-10 from the
user's files): registry and options, tokens (intensity + 1, no padding), and a seed mechanism through every
harness stage in-process at tiny sizes on the data the trusted scorer prepared, the logits it sends scored by
the scorer (accuracy only checked to be a fraction).
"""

import pickle

import numpy as np
import pytest

from aira_jax.design.mechanisms import mechanism_source
from aira_jax.design.tasks import design_task_names, make_design_task
from aira_jax.design.tasks.lra_harness import run_stages
from aira_jax.design.tasks.lra_training import PIXEL_VOCAB_SIZE, TASKS, downsample, load_splits

TINY = dict(num_train=64, num_validation=24, num_test=24, steps=3, batch_size=8, d_model=16, num_heads=2,
            num_layers=1, lowering="never")
STAGES = ["import", "interface", "compile", "numerics", "train", "predict"]


def _fake_cifar(root, per_batch=8):
  """cifar-10-batches-py with 5 + 1 pickles of `per_batch` random RGB rows (the layout loaders read)."""
  root.mkdir()
  rng = np.random.default_rng(0)
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             b"labels": [int(x) for x in rng.integers(0, 10, per_batch)]}
    (root / name).write_bytes(pickle.dumps(batch))
  return root


def _run_all(task, tmp_path, mechanism="softmax"):
  """Prepares the task's scorer in tmp_path/data, runs every stage on tmp_path/work and scores the logits."""
  scorer = task.make_scorer()
  scorer.prepare(tmp_path / "data")
  work = tmp_path / "work"
  work.mkdir()
  (work / "model.py").write_text(mechanism_source(mechanism))
  sent = []
  results = run_stages(scorer.harness_settings(), work, sink=sent.append)
  assert [(r.stage, r.ok) for r in results] == [(s, True) for s in STAGES], results[-1].error
  classes = TASKS[task.settings["task"]][1]
  assert [(a.shape, a.dtype) for a in sent] == [((len(scorer.labels[name]), classes), np.float32)
                                                for name in ("validation", "test")]
  score = scorer.metrics({"validation": sent[0], "test": sent[1]})
  assert 0.0 <= score["val_accuracy"] <= 1.0 and 0.0 <= score["test_accuracy"] <= 1.0
  assert results[-1].metrics["steps"] == task.settings["steps"]
  return results, score


def test_pixel_tasks_from_registry(tmp_path):
  assert {"lra-image", "lra-pathfinder"} <= set(design_task_names())
  task = make_design_task("lra-pathfinder")
  s = task.settings
  assert (task.name, task.metric, task.final_metric, task.harness_module) == (
      "lra-pathfinder", "val_accuracy", "test_accuracy", "aira_jax.design.tasks.lra_harness")
  assert (s["image_size"], s["seq_len"], s["num_train"], s["path"]) == (16, 256, 4000, None)
  assert "16x16 = 256 pixel tokens" in task.description and "intensities 0..255 plus 1" in task.description
  assert TASKS["pathfinder"] == (PIXEL_VOCAB_SIZE, 2, False) and TASKS["image"] == (PIXEL_VOCAB_SIZE, 10, False)
  image = make_design_task("lra-image", path=_fake_cifar(tmp_path / "cifar"))
  assert image.settings["seq_len"] == 256 and "CIFAR-10" in image.description
  assert make_design_task("lra-image", path=tmp_path / "cifar", image_size=32).settings["seq_len"] == 1024


def test_pixel_task_options_are_checked(tmp_path):
  with pytest.raises(ValueError, match="seq_len is image_size"):
    make_design_task("lra-pathfinder", seq_len=256)
  with pytest.raises(ValueError, match="image_size must be 32"):
    make_design_task("lra-image", path=_fake_cifar(tmp_path / "cifar"), image_size=12)
  with pytest.raises(ValueError, match="do not fit"):  # the generator would retry forever
    make_design_task("lra-pathfinder", image_size=16, paddle_length=3, num_paddles=5)
  with pytest.raises(ValueError, match="metadata"):
    make_design_task("lra-pathfinder", path=tmp_path / "missing")


def test_image_needs_data(tmp_path):
  for path in (None, tmp_path / "missing"):
    with pytest.raises(ValueError, match=r"lra-image needs path=.*data_batch_1\.\.5 and test_batch"):
      make_design_task("lra-image", path=path)


def test_pathfinder_generated_tokens_and_seed():
  settings = dict(make_design_task("lra-pathfinder", **TINY).settings)
  splits = load_splits(settings)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [64, 24, 24]
  inputs = splits["train"].inputs
  assert inputs.shape == (64, 256) and inputs.dtype == np.int32
  assert set(np.unique(inputs)) == {1, 256}  # background 0 and strokes 255, plus 1: never the padding id
  assert set(np.unique(splits["train"].targets)) == {0, 1}
  again = load_splits(settings)
  assert np.array_equal(again["test"].inputs, splits["test"].inputs)
  other = load_splits({**settings, "seed": 1})
  assert not np.array_equal(other["train"].inputs, inputs)


def test_pathfinder_generated_runs_every_stage(tmp_path):
  _run_all(make_design_task("lra-pathfinder", **TINY), tmp_path)


def test_image_from_fake_cifar_runs_every_stage(tmp_path):
  data = _fake_cifar(tmp_path / "cifar")
  task = make_design_task("lra-image", path=data, **{**TINY, "image_size": 8})
  settings = dict(task.settings)
  splits = load_splits(settings)
  assert splits["train"].inputs.shape == (36, 64) and len(splits["validation"]) == 4 and len(splits["test"]) == 8
  full = load_splits({**settings, "image_size": 32, "seq_len": 1024})
  assert full["test"].inputs.min() >= 1 and full["test"].inputs.max() <= 256
  assert np.array_equal(downsample(full["test"].inputs - 1, 8) + 1, splits["test"].inputs)
  _run_all(task, tmp_path, mechanism="linear")


def test_downsample_averages_blocks():
  pixels = np.arange(16, dtype=np.int32).reshape(1, 16)  # a 4x4 image
  assert downsample(pixels, 2).tolist() == [[np.rint(np.mean([0, 1, 4, 5])), np.rint(np.mean([2, 3, 6, 7])),
                                             np.rint(np.mean([8, 9, 12, 13])), np.rint(np.mean([10, 11, 14, 15]))]]
  assert downsample(pixels, 4) is pixels


def test_pathfinder_from_png_files(tmp_path):
  image_module = pytest.importorskip("PIL.Image")
  from aira_jax.tasks.lra import pathfinder
  images, labels, _ = pathfinder.generate(40, seed=0, config=pathfinder.PathfinderConfig(
      image_size=16, paddle_length=2, num_paddles=4, num_distractors=0))
  data = tmp_path / "pathfinder16"
  (data / "imgs" / "0").mkdir(parents=True)
  (data / "metadata").mkdir()
  lines = []
  for i, (image, label) in enumerate(zip(images, labels)):
    image_module.fromarray(image).save(data / "imgs" / "0" / f"sample_{i}.png")
    lines.append(f"imgs/0 sample_{i}.png 0 {label} 1")
  (data / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match="are 16x16, not image_size=32"):
    make_design_task("lra-pathfinder", path=data, image_size=32)
  settings = dict(make_design_task("lra-pathfinder", path=data, **TINY).settings)
  assert (settings["image_size"], settings["seq_len"]) == (16, 256)  # read from the first image
  splits = load_splits(settings)
  assert [len(splits[k]) for k in ("train", "validation", "test")] == [32, 4, 4]
  assert set(np.unique(splits["train"].inputs)) == {1, 256}
