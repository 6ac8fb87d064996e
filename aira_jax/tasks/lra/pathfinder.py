"""Pathfinder / Path-X images (Linsley et al. 2018, as used by Long Range Arena), generated with numpy.

An image holds 2 + num_distractors curved paths on a black background. A path is a chain of `num_paddles`
straight "paddles" of `paddle_length` pixels; each paddle turns from the previous one by at most `max_turn`
radians (the curvature limit). Two discs of radius `marker_radius` are the markers. Label 1: both markers sit
on the two ends of one path (the other paths are unmarked). Label 0: each marker sits on one end of a
different path. Both labels have the same number of paths, so counting strokes tells nothing.

Difference from the original stimuli, on purpose: paddles are drawn contiguously (the original leaves small
gaps) and no two paths touch — each new path is rejected and redrawn if any of its pixels falls within one
pixel of a stroke already drawn. So "the markers are connected" is exactly "one 8-connected component of
bright pixels holds both markers", which a flood fill can check.

Pixels: background 0, strokes `contrast` (0..255); the task's tokens are the uint8 pixels flattened row by row
(1024 for 32x32, 16384 for Path-X 128x128). Vectorised per path: a path's points are a cumulative sum of
angle steps and its pixels are rasterised in one numpy pass; images are drawn one after another.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PathfinderConfig:
  """Image parameters; `PATHFINDER_32` and `PATH_X_128` are the defaults of the two tasks."""

  image_size: int = 32
  num_distractors: int = 1
  paddle_length: int = 3
  num_paddles: int = 5
  max_turn: float = np.pi / 4
  marker_radius: int = 1
  contrast: int = 255
  max_tries: int = 200


PATHFINDER_32 = PathfinderConfig()
PATH_X_128 = PathfinderConfig(image_size=128, num_distractors=6, paddle_length=6, num_paddles=12,
                              marker_radius=2)


def _walk_pixels(rng: np.random.Generator, cfg: PathfinderConfig) -> np.ndarray | None:
  """Pixels (K, 2) of one random path inside the image margin, in drawing order; None if it left the image."""
  margin = cfg.marker_radius + 1
  start = rng.uniform(margin, cfg.image_size - 1 - margin, 2)
  angles = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(-cfg.max_turn, cfg.max_turn, cfg.num_paddles))
  steps = cfg.paddle_length * np.stack([np.sin(angles), np.cos(angles)], axis=1)
  corners = np.concatenate([start[None], start + np.cumsum(steps, axis=0)])
  if corners.min() < margin or corners.max() > cfg.image_size - 1 - margin:
    return None
  fractions = np.linspace(0, 1, 4 * cfg.paddle_length, endpoint=False)
  points = corners[:-1, None, :] + fractions[None, :, None] * steps[:, None, :]
  points = np.concatenate([points.reshape(-1, 2), corners[-1:]])
  pixels = np.rint(points).astype(np.int64)
  keep = np.concatenate([[True], np.any(pixels[1:] != pixels[:-1], axis=1)])
  return pixels[keep]


def _disc(center: np.ndarray, radius: int) -> np.ndarray:
  dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
  inside = dy * dy + dx * dx <= radius * radius
  return center[None] + np.stack([dy[inside], dx[inside]], axis=1)


def _dilate(mask: np.ndarray) -> np.ndarray:
  padded = np.pad(mask, 1)
  h, w = mask.shape
  return np.any([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)


def _draw_image(rng: np.random.Generator, cfg: PathfinderConfig, label: int):
  """One image and its two marker centres, or None if the paths could not be placed in max_tries."""
  size = cfg.image_size
  image = np.zeros((size, size), bool)
  # Markers per path: label 1 -> both ends of path 0; label 0 -> the first end of paths 0 and 1.
  ends_to_mark = [(0, -1), ()] if label == 1 else [(0,), (0,)]
  ends_to_mark += [()] * cfg.num_distractors
  markers = []
  for ends in ends_to_mark:
    for _ in range(cfg.max_tries):
      pixels = _walk_pixels(rng, cfg)
      if pixels is None:
        continue
      stroke = [pixels] + [_disc(pixels[e], cfg.marker_radius) for e in ends]
      stroke = np.concatenate(stroke)
      if not _dilate(image)[stroke[:, 0], stroke[:, 1]].any():
        image[stroke[:, 0], stroke[:, 1]] = True
        markers += [pixels[e] for e in ends]
        break
    else:
      return None
  return image, np.stack(markers)


def generate(num_examples: int, seed: int = 0, config: PathfinderConfig = PATHFINDER_32):
  """(images (N, S, S) uint8, labels (N,) int32 alternating-balanced then shuffled, markers (N, 2, 2))."""
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(num_examples) % 2).astype(np.int32)
  images = np.zeros((num_examples, config.image_size, config.image_size), np.uint8)
  markers = np.zeros((num_examples, 2, 2), np.int64)
  for i, label in enumerate(labels):
    drawn = None
    while drawn is None:
      drawn = _draw_image(rng, config, int(label))
    images[i] = drawn[0].astype(np.uint8) * np.uint8(config.contrast)
    markers[i] = drawn[1]
  return images, labels, markers
