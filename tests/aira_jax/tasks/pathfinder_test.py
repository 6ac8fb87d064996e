"""Tests of the Pathfinder generator: shapes, dtype, balance, markers, and connectivity checked by an
independent flood fill (the two markers share a component iff the label is 1)."""

from collections import deque

import numpy as np
import pytest

from aira_jax.tasks.lra import pathfinder


def flood_fill(image: np.ndarray, start) -> np.ndarray:
  """Bright pixels 8-connected to `start`, by breadth-first search."""
  seen = np.zeros(image.shape, bool)
  queue = deque([tuple(start)])
  seen[tuple(start)] = True
  while queue:
    y, x = queue.popleft()
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        ny, nx = y + dy, x + dx
        if 0 <= ny < image.shape[0] and 0 <= nx < image.shape[1] and image[ny, nx] and not seen[ny, nx]:
          seen[ny, nx] = True
          queue.append((ny, nx))
  return seen


@pytest.fixture(scope="module")
def small():
  return pathfinder.generate(80, seed=1)


def test_shapes_dtype_balance(small):
  images, labels, markers = small
  assert images.shape == (80, 32, 32) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and labels.sum() == 40
  assert set(np.unique(images)) == {0, 255}


def test_markers_present_and_connectivity_matches_label(small):
  images, labels, markers = small
  for image, label, (a, b) in zip(images, labels, markers):
    assert image[tuple(a)] and image[tuple(b)]
    assert flood_fill(image > 0, a)[tuple(b)] == bool(label)


def test_deterministic_by_seed(small):
  again = pathfinder.generate(80, seed=1)
  assert np.array_equal(again[0], small[0]) and np.array_equal(again[1], small[1])
  assert not np.array_equal(pathfinder.generate(80, seed=2)[0], small[0])


def test_path_x_size_and_connectivity():
  images, labels, markers = pathfinder.generate(6, seed=0, config=pathfinder.PATH_X_128)
  assert images.shape == (6, 128, 128)
  for image, label, (a, b) in zip(images, labels, markers):
    assert flood_fill(image > 0, a)[tuple(b)] == bool(label)


def test_contrast_parameter():
  config = pathfinder.PathfinderConfig(contrast=90, num_distractors=3)
  images, _, _ = pathfinder.generate(4, seed=0, config=config)
  assert set(np.unique(images)) == {0, 90}
