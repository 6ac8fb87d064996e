"""Readers for the released Long Range Arena files, from a path the user gives (nothing is downloaded).

Accepted layouts (each error names the path and what was expected):
  ListOps: a directory with basic_train.tsv, basic_val.tsv, basic_test.tsv (header "Source\\tTarget").
  Retrieval (AAN): a directory with new_aan_pairs.{train,eval,test}.tsv; rows "label id1 id2 text1 text2"
    tab-separated (a header row whose first field is not a number is skipped).
  Text (IMDb): the aclImdb directory, with {train,test}/{pos,neg}/*.txt; label 1 = pos, 0 = neg.
  Image (CIFAR-10): the cifar-10-batches-py directory, with the pickles data_batch_1..5 and test_batch
    (dicts with b"data" (N, 3072) uint8 in R, G, B planes and b"labels"). Grayscale as LRA
    (tf.image.rgb_to_grayscale): round(0.2989 R + 0.5870 G + 0.1140 B), clipped to 0..255.
  Pathfinder: a directory with metadata/*.npy text files (the LRA release names them .npy, but they are
    text); each line "subdir filename _ label ..." space-separated: the image is root/subdir/filename, a
    grayscale PNG, and the 4th field is the 0/1 label. PNGs are read with Pillow (the "images" extra:
    pip install 'aira_jax[lra]'), imported only when needed.
Byte tokenisation and ListOps ids: see tokenize.py.
"""

from __future__ import annotations

import csv
import pathlib
import pickle
import sys

import numpy as np

from aira_jax.tasks.lra import listops
from aira_jax.tasks.lra.tokenize import encode_bytes

LISTOPS_FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}
AAN_FILES = {"train": "new_aan_pairs.train.tsv", "validation": "new_aan_pairs.eval.tsv",
             "test": "new_aan_pairs.test.tsv"}
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])


def _need_dir(path, what: str) -> pathlib.Path:
  path = pathlib.Path(path)
  if not path.is_dir():
    raise FileNotFoundError(f"{path} is not a directory; expected {what}")
  return path


def _need_file(path: pathlib.Path, what: str) -> pathlib.Path:
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found; expected {what}")
  return path


def load_listops(root) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
  """split -> (ListOps id arrays, labels) from the three released TSVs."""
  root = _need_dir(root, f"the ListOps directory with {', '.join(LISTOPS_FILES.values())}")
  return {split: listops.read_tsv(_need_file(root / name, "a ListOps TSV (header 'Source\\tTarget')"))
          for split, name in LISTOPS_FILES.items()}


def read_aan_tsv(path) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
  """(byte ids of text1, of text2, labels) of one AAN retrieval TSV."""
  path = _need_file(pathlib.Path(path), "an AAN TSV with columns label, id1, id2, text1, text2")
  csv.field_size_limit(sys.maxsize)
  with open(path, newline="", encoding="utf-8", errors="replace") as f:
    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
  if rows and not _is_number(rows[0][0] if rows[0] else ""):
    rows = rows[1:]
  if not rows:
    raise ValueError(f"{path}: no examples (expected rows label, id1, id2, text1, text2)")
  first, second, labels = [], [], []
  for line, row in enumerate(rows, start=1):
    if len(row) != 5 or not _is_number(row[0]):
      raise ValueError(f"{path}:{line}: expected 5 tab-separated columns (numeric label, id1, id2, text1, "
                       f"text2), got {len(row)} starting {row[:1]}")
    labels.append(int(float(row[0])))
    first.append(encode_bytes(row[3]))
    second.append(encode_bytes(row[4]))
  return first, second, np.asarray(labels, np.int32)


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def load_aan(root) -> dict[str, tuple[list[np.ndarray], list[np.ndarray], np.ndarray]]:
  """split -> (text1 ids, text2 ids, labels) from the three AAN TSVs."""
  root = _need_dir(root, f"the AAN directory with {', '.join(AAN_FILES.values())}")
  return {split: read_aan_tsv(root / name) for split, name in AAN_FILES.items()}


def load_imdb(root) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
  """"train" and "test" -> (byte ids, labels) from aclImdb/{train,test}/{pos,neg}/*.txt (files sorted)."""
  root = _need_dir(root, "the aclImdb directory with train/ and test/, each holding pos/ and neg/ *.txt")
  out = {}
  for split in ("train", "test"):
    docs, labels = [], []
    for label, name in ((0, "neg"), (1, "pos")):
      folder = _need_dir(root / split / name, f"IMDb reviews as *.txt (aclImdb/{split}/{name})")
      files = sorted(folder.glob("*.txt"))
      if not files:
        raise ValueError(f"{folder}: no *.txt reviews found")
      docs += [encode_bytes(f.read_bytes()) for f in files]
      labels += [label] * len(files)
    out[split] = (docs, np.asarray(labels, np.int32))
  return out


def to_grayscale(rgb_planes: np.ndarray) -> np.ndarray:
  """(N, 3072) CIFAR rows (R, G, B planes of 32x32) -> (N, 1024) uint8 luminance."""
  planes = rgb_planes.reshape(len(rgb_planes), 3, 1024).astype(np.float64)
  return np.clip(np.rint(np.einsum("c,ncp->np", GRAY_WEIGHTS, planes)), 0, 255).astype(np.uint8)


def _read_cifar_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  _need_file(path, "a CIFAR-10 python pickle (dict with b'data' and b'labels')")
  try:
    with open(path, "rb") as f:
      batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int32)
  except Exception as e:  # noqa: BLE001 - any unreadable pickle gets the same message
    raise ValueError(f"{path}: not a CIFAR-10 python batch (dict with b'data' (N, 3072) uint8 and "
                     f"b'labels'): {e}") from None
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(f"{path}: expected b'data' of shape (N, 3072) and N labels, got {data.shape} and "
                     f"{len(labels)} labels")
  return to_grayscale(data), labels


def load_cifar10(root) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """"train" (data_batch_1..5) and "test" (test_batch) -> ((N, 1024) uint8 gray pixels, labels)."""
  root = _need_dir(root, "the cifar-10-batches-py directory with data_batch_1..5 and test_batch")
  train = [_read_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
  return {"train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
          "test": _read_cifar_batch(root / "test_batch")}


def _read_png(path: pathlib.Path) -> np.ndarray:
  try:
    from PIL import Image
  except ImportError:
    raise ImportError("reading Pathfinder PNGs needs Pillow: pip install 'aira_jax[lra]' (Pillow)") from None
  _need_file(path, "a Pathfinder PNG named by the metadata")
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("L"), np.uint8)
  except Exception as e:  # noqa: BLE001
    raise ValueError(f"{path}: unreadable image ({e})") from None


def load_pathfinder(root) -> tuple[np.ndarray, np.ndarray]:
  """(images (N, S, S) uint8, labels) of every metadata line under root/metadata, in file then line order."""
  root = _need_dir(root, "a Pathfinder directory with metadata/*.npy lines 'subdir filename _ label'")
  meta_files = sorted((root / "metadata").glob("*.npy")) if (root / "metadata").is_dir() else []
  if not meta_files:
    raise FileNotFoundError(f"{root / 'metadata'}: no metadata/*.npy files (text lines 'subdir filename _ label')")
  images, labels = [], []
  for meta in meta_files:
    for line_no, line in enumerate(meta.read_text().splitlines(), start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) < 4 or fields[3] not in ("0", "1"):
        raise ValueError(f"{meta}:{line_no}: expected 'subdir filename _ label(0/1) ...', got {line[:80]!r}")
      images.append(_read_png(root / fields[0] / fields[1]))
      labels.append(int(fields[3]))
  if not images:
    raise ValueError(f"{root / 'metadata'}: metadata files list no images")
  if len({im.shape for im in images}) != 1:
    raise ValueError(f"{root}: images of different sizes {sorted({im.shape for im in images})}")
  return np.stack(images), np.asarray(labels, np.int32)
