"""Tests for the grain input pipelines: shapes, seeded shuffling, per-process slicing, resumable state,
token-file rows, generated records, and global batches on 8 fake devices."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from aira_jax.train.data import (ArraySource, GeneratorSource, TokenFileSource, batch_sharding, global_batch,
                                 make_loader)

ROWS, SEQ = 24, 6


def array_source(rows=ROWS):
  inputs = np.arange(rows * SEQ, dtype=np.int32).reshape(rows, SEQ)
  return ArraySource({"inputs": inputs, "targets": np.arange(rows, dtype=np.int32)})


def take(loader, n):
  return [next(loader) for _ in range(n)]


def test_batches_have_shapes_and_dtypes():
  batch = next(make_loader(array_source(), batch_size=4, seed=0, process_index=0, process_count=1))
  assert set(batch) == {"inputs", "targets"}
  assert batch["inputs"].shape == (4, SEQ) and batch["inputs"].dtype == np.int32
  assert batch["targets"].shape == (4,) and batch["targets"].dtype == np.int32
  np.testing.assert_array_equal(batch["inputs"][:, 0], batch["targets"] * SEQ)  # rows stay whole


def test_shuffle_is_seeded_and_covers_every_row_once_per_epoch():
  def epochs(seed):
    loader = make_loader(array_source(), batch_size=4, seed=seed, process_index=0, process_count=1)
    rows = np.concatenate([b["targets"] for b in take(loader, 2 * ROWS // 4)])
    return rows[:ROWS], rows[ROWS:]

  first, second = epochs(0)
  assert sorted(first) == list(range(ROWS)) and sorted(second) == list(range(ROWS))
  assert list(first) != list(range(ROWS)) and list(first) != list(second)  # shuffled, differently per epoch
  np.testing.assert_array_equal(epochs(0)[0], first)
  assert list(epochs(1)[0]) != list(first)


def test_no_shuffle_keeps_order_and_num_epochs_ends():
  loader = make_loader(array_source(), batch_size=5, seed=0, shuffle=False, num_epochs=1, process_index=0,
                       process_count=1)
  batches = list(loader)
  assert len(batches) == ROWS // 5 == loader.batches_per_epoch
  np.testing.assert_array_equal(np.concatenate([b["targets"] for b in batches]), np.arange(20))


def test_process_slices_are_disjoint_halves_of_the_global_batch():
  full = take(make_loader(array_source(), batch_size=8, seed=3, process_index=0, process_count=1), 6)
  halves = [take(make_loader(array_source(), batch_size=8, seed=3, process_index=p, process_count=2), 6)
            for p in range(2)]
  for step, batch in enumerate(full):
    a, b = halves[0][step]["targets"], halves[1][step]["targets"]
    assert a.shape == b.shape == (4,)
    assert not set(a) & set(b)
    np.testing.assert_array_equal(np.concatenate([a, b]), batch["targets"])


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="multiple of process_count"):
    make_loader(array_source(), batch_size=5, seed=0, process_index=0, process_count=2)
  with pytest.raises(ValueError, match="equally long"):
    ArraySource({"a": np.zeros(3), "b": np.zeros(4)})


@pytest.mark.parametrize("process_index,process_count", [(0, 1), (1, 2)])
def test_resumed_iterator_yields_the_same_batches(process_index, process_count):
  def loader():
    return make_loader(array_source(), batch_size=4, seed=7, process_index=process_index,
                       process_count=process_count)

  straight = loader()
  take(straight, 5)
  state = json.loads(json.dumps(straight.get_state()))  # survives JSON, as in a checkpoint
  expected = take(straight, 9)  # crosses an epoch boundary
  resumed = loader()
  resumed.set_state(state)
  for want, got in zip(expected, take(resumed, 9)):
    for name in want:
      np.testing.assert_array_equal(got[name], want[name])


def test_state_from_a_different_loader_is_rejected():
  state = make_loader(array_source(), batch_size=4, seed=7, process_index=0, process_count=1).get_state()
  other = make_loader(array_source(), batch_size=4, seed=8, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="seed"):
    other.set_state(state)


def test_token_file_source_shifts_rows(tmp_path):
  tokens = np.arange(3 * 5 + 3, dtype=np.uint16)  # 18 tokens, seq_len 5 -> (18 - 1) // 5 = 3 rows
  path = tmp_path / "tokens.bin"
  tokens.tofile(path)
  source = TokenFileSource(path, seq_len=5, dtype="uint16")
  assert len(source) == 3
  record = source[1]
  np.testing.assert_array_equal(record["inputs"], np.arange(5, 10))
  np.testing.assert_array_equal(record["targets"], np.arange(6, 11))
  assert record["inputs"].dtype == np.int32
  batch = next(make_loader(source, batch_size=3, seed=0, shuffle=False, process_index=0, process_count=1))
  np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
  np.testing.assert_array_equal(batch["inputs"][:, 0], [0, 5, 10])


def test_token_file_source_uint32_and_errors(tmp_path):
  path = tmp_path / "big.bin"
  np.array([70_000, 70_001, 70_002], dtype=np.uint32).tofile(path)
  np.testing.assert_array_equal(TokenFileSource(path, seq_len=2, dtype=np.uint32)[0]["targets"], [70_001, 70_002])
  with pytest.raises(ValueError, match="fewer than one row"):
    TokenFileSource(path, seq_len=8, dtype=np.uint32)
  with pytest.raises(FileNotFoundError, match="missing.bin"):
    TokenFileSource(tmp_path / "missing.bin", seq_len=2)


def square_record(index):
  return {"x": np.full((3,), index, np.int32), "y": np.int32(index * index)}


def test_generator_source():
  source = GeneratorSource(square_record, length=10)
  batch = next(make_loader(source, batch_size=5, seed=0, shuffle=False, process_index=0, process_count=1))
  np.testing.assert_array_equal(batch["y"], np.arange(5) ** 2)
  assert batch["x"].shape == (5, 3)
  with pytest.raises(IndexError):
    source[10]


@pytest.mark.parametrize("shape,names", [((8,), ("data",)), ((2, 2, 2), ("data", "fsdp", "tensor"))])
def test_global_batch_on_a_mesh(shape, names):
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(shape), names)
  batch = next(make_loader(array_source(), batch_size=8, seed=0, process_index=0, process_count=1))
  arrays = global_batch(batch, mesh)
  expected_spec = PartitionSpec("data") if len(shape) == 1 else PartitionSpec(("data", "fsdp"))
  for name in batch:
    assert isinstance(arrays[name], jax.Array)
    assert arrays[name].sharding.is_equivalent_to(NamedSharding(mesh, expected_spec), batch[name].ndim)
    np.testing.assert_array_equal(np.asarray(arrays[name]), batch[name])
  assert batch_sharding(mesh).spec == expected_spec
  explicit = global_batch(batch, mesh, PartitionSpec(None))
  assert explicit["inputs"].sharding.is_fully_replicated
