"""Scoring a model on the rows of a split in fixed-size batches (one compiled shape), token-weighted."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from aira_jax.tasks.base import IGNORE


def score_in_batches(score: Callable[[dict[str, np.ndarray]], Mapping[str, float]], inputs: np.ndarray,
                     targets: np.ndarray, batch_size: int) -> dict[str, float]:
  """Metrics of `score(batch) -> {name: scalar}` over all rows, `batch_size` rows at a time, so a large
  validation set never becomes one huge batch of logits. The last batch is padded with rows whose targets
  are all IGNORE (one compiled shape). Batches are averaged with weights = their counted targets: exact for
  per-token means (the loss, accuracy, nats), a token-weighted mean for the rest (val_bpb weights by bytes)."""
  totals: dict[str, float] = {}
  counted_total = 0
  for start in range(0, len(inputs), batch_size):
    rows_in, rows_out = inputs[start:start + batch_size], targets[start:start + batch_size]
    counted = int(np.sum(rows_out != IGNORE))
    if counted == 0:
      continue
    missing = batch_size - len(rows_in)
    if missing:
      rows_in = np.concatenate([rows_in, np.repeat(rows_in[:1], missing, axis=0)])
      rows_out = np.concatenate([rows_out, np.full((missing,) + rows_out.shape[1:], IGNORE, rows_out.dtype)])
    for name, value in score({"inputs": rows_in, "targets": rows_out}).items():
      totals[name] = totals.get(name, 0.0) + float(value) * counted
    counted_total += counted
  return {name: total / max(counted_total, 1) for name, total in totals.items()}
