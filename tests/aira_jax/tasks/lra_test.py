"""Tests of the LRA loaders (on fixture files written here), their errors, tokenisation, the registered tasks
and the presets."""

import pickle

import numpy as np
import pytest

from aira_jax.tasks import make_task
from aira_jax.tasks.lra import listops, loaders, lra_preset
from aira_jax.tasks.lra.tokenize import decode_bytes, encode_bytes, pad_or_truncate


def write_aan(root, rows=3):
  root.mkdir(exist_ok=True)
  for name in loaders.AAN_FILES.values():
    lines = [f"{i % 2}\tid{i}\tid{i + 1}\tfirst doc {i}\tsecond doc é{i}" for i in range(rows)]
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
  return root


def write_imdb(root):
  for split in ("train", "test"):
    for name in ("pos", "neg"):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i in range(5):
        (folder / f"{i}_7.txt").write_text(f"{name} review {i} " * 3)
  return root


def write_cifar(root, per_batch=4):
  root.mkdir()
  rng = np.random.default_rng(0)
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             b"labels": list(rng.integers(0, 10, per_batch))}
    with open(root / name, "wb") as f:
      pickle.dump(batch, f)
  return root


def test_byte_tokens_and_padding():
  ids = encode_bytes("hé")
  assert ids.tolist() == [ord("h") + 1, 0xC3 + 1, 0xA9 + 1] and decode_bytes(ids) == "hé".encode()
  assert pad_or_truncate([np.array([1, 2, 3]), np.array([4])], 2).tolist() == [[1, 2], [4, 0]]


def test_listops_task_generated_and_from_tsv(tmp_path):
  task = make_task("lra/listops", num_train=12, num_validation=4, num_test=4, min_len=10, max_len=40)
  splits = task.splits()
  assert splits["train"].inputs.shape == (12, 40) and splits["test"].targets.shape == (4,)
  tokens, labels = listops.generate(6, seed=0, config=listops.ListOpsConfig(min_len=5, max_len=30))
  for name in loaders.LISTOPS_FILES.values():
    listops.write_tsv(tmp_path / name, tokens, labels)
  loaded = make_task("lra/listops", path=tmp_path, seq_len=30).splits()
  assert np.array_equal(loaded["validation"].targets, labels)
  with pytest.raises(FileNotFoundError, match="basic_train.tsv"):
    make_task("lra/listops", path=tmp_path / "nowhere").splits()


def test_retrieval_task_and_errors(tmp_path):
  task = make_task("lra/retrieval", path=write_aan(tmp_path / "aan"), seq_len=16)
  assert task.spec.dual
  train = task.splits()["train"]
  assert train.inputs.shape == (3, 16) and train.inputs2.shape == (3, 16)
  assert decode_bytes(train.inputs2[1]) == "second doc é1".encode()
  bad = tmp_path / "bad"
  write_aan(bad)
  (bad / "new_aan_pairs.eval.tsv").write_text("1\ta\tb\tonly four\n")
  with pytest.raises(ValueError, match="new_aan_pairs.eval.tsv:1: expected 5"):
    loaders.load_aan(bad)
  (bad / "new_aan_pairs.eval.tsv").write_text("")
  with pytest.raises(ValueError, match="no examples"):
    loaders.load_aan(bad)
  with pytest.raises(ValueError, match="AAN pairs"):
    make_task("lra/retrieval")


def test_text_task_and_errors(tmp_path):
  root = write_imdb(tmp_path / "aclImdb")
  splits = make_task("lra/text", path=root, seq_len=64, validation_fraction=0.2).splits()
  assert splits["train"].inputs.shape == (8, 64) and len(splits["validation"]) == 2
  assert sorted(splits["test"].targets.tolist()) == [0] * 5 + [1] * 5
  for f in (root / "test" / "neg").glob("*.txt"):
    f.unlink()
  with pytest.raises(ValueError, match="neg: no \\*.txt"):
    loaders.load_imdb(root)
  with pytest.raises(FileNotFoundError, match="aclImdb"):
    loaders.load_imdb(tmp_path / "missing")
  with pytest.raises(ValueError, match="aclImdb"):
    make_task("lra/text")


def test_image_task_grayscale_and_errors(tmp_path):
  root = write_cifar(tmp_path / "cifar")
  parts = loaders.load_cifar10(root)
  assert parts["train"][0].shape == (20, 1024) and parts["test"][0].dtype == np.uint8
  pixel = np.zeros((1, 3072), np.uint8)
  pixel[0, 0], pixel[0, 1024], pixel[0, 2048] = 100, 200, 50
  assert loaders.to_grayscale(pixel)[0, 0] == round(0.2989 * 100 + 0.5870 * 200 + 0.1140 * 50)
  splits = make_task("lra/image", path=root).splits()
  assert len(splits["train"]) + len(splits["validation"]) == 20 and splits["test"].inputs.shape == (4, 1024)
  (root / "test_batch").write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match="test_batch: not a CIFAR-10"):
    loaders.load_cifar10(root)
  (root / "data_batch_3").unlink()
  with pytest.raises(FileNotFoundError, match="data_batch_3"):
    loaders.load_cifar10(root)
  with pytest.raises(ValueError, match="cifar-10-batches-py"):
    make_task("lra/image")


def test_pathfinder_tasks_generated():
  splits = make_task("lra/pathfinder", num_train=10, num_validation=4, num_test=4).splits()
  assert splits["train"].inputs.shape == (10, 1024) and splits["train"].inputs.max() <= 255
  task = make_task("lra/pathx", num_train=2, num_validation=1, num_test=1)
  assert task.spec.seq_len == 16384 and task.splits()["test"].inputs.shape == (1, 16384)


def test_pathfinder_metadata_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="metadata"):
    loaders.load_pathfinder(tmp_path)
  (tmp_path / "metadata").mkdir()
  (tmp_path / "metadata" / "0.npy").write_text("imgs/0 sample_0.png 0\n")
  with pytest.raises(ValueError, match="0.npy:1: expected"):
    loaders.load_pathfinder(tmp_path)


def test_pathfinder_png_loader(tmp_path):
  image_module = pytest.importorskip("PIL.Image")
  from aira_jax.tasks.lra import pathfinder
  images, labels, _ = pathfinder.generate(10, seed=0)
  (tmp_path / "imgs" / "0").mkdir(parents=True)
  (tmp_path / "metadata").mkdir()
  lines = []
  for i, (image, label) in enumerate(zip(images, labels)):
    image_module.fromarray(image).save(tmp_path / "imgs" / "0" / f"sample_{i}.png")
    lines.append(f"imgs/0 sample_{i}.png 0 {label} 1")
  (tmp_path / "metadata" / "0.npy").write_text("\n".join(lines) + "\n")
  loaded, loaded_labels = loaders.load_pathfinder(tmp_path)
  assert np.array_equal(loaded, images) and np.array_equal(loaded_labels, labels)
  assert len(make_task("lra/pathfinder", path=tmp_path).splits()["train"]) == 8
  (tmp_path / "imgs" / "0" / "sample_3.png").write_bytes(b"broken")
  with pytest.raises(ValueError, match="sample_3.png: unreadable image"):
    loaders.load_pathfinder(tmp_path)


def test_presets():
  assert lra_preset("listops").config.d_model == 512 and lra_preset("lra/listops").depth == 12
  tiny = lra_preset("text", tiny=True)
  assert tiny.config.d_model == 32 and tiny.config.vocab_size == 257
  with pytest.raises(ValueError, match="unknown LRA task"):
    lra_preset("nope")
