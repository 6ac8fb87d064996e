"""Tests for `experiments/bench/mosaic_sweep.py` (the MosaicBlocks sweep): its candidates and a CPU dry run."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

import mosaic_sweep  # noqa: E402
from pallas_kernels.attention import MosaicBlocks  # noqa: E402
from pallas_kernels.attention import mosaic_blocks as mb  # noqa: E402


@pytest.mark.parametrize("head_dim", [64, 128])
def test_candidates_start_with_the_default_and_fit_shared_memory(head_dim):
  fitting, skipped = mosaic_sweep.candidates(mosaic_sweep.FORWARD_GRID, MosaicBlocks(), head_dim)
  assert fitting[0] == MosaicBlocks()
  assert len(set(fitting) | set(skipped)) == len(fitting) + len(skipped) == 24  # 2 x 3 x 2 x 2, default included
  size = lambda blocks: max(mb.shared_memory_bytes(blocks, head_dim, 2).values())
  assert all(size(b) <= mb.SHARED_MEMORY_BYTES for b in fitting)
  assert all(size(b) > mb.SHARED_MEMORY_BYTES for b in skipped)
  assert (MosaicBlocks(forward_kv=256) in skipped) == (head_dim == 128)  # 2 stages of 256 rows x 2 (k, v)


def test_the_backward_phase_starts_from_the_forward_winner():
  winner = MosaicBlocks(forward_kv=64, pingpong=False)
  fitting, _ = mosaic_sweep.candidates(mosaic_sweep.BACKWARD_GRID, winner, 128)
  assert fitting[0] == winner and all(b.forward_kv == 64 and not b.pingpong for b in fitting)


def test_a_dry_run_sweeps_both_phases_and_names_the_best(tmp_path, capsys):
  out = tmp_path / "sweep.json"
  assert mosaic_sweep.main(["--dry-run", "--json", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "best for d64: MosaicBlocks(forward_q=" in printed
  data = json.loads(out.read_text())
  phases = {row["phase"] for row in data["rows"] if row["status"] == "ok"}
  assert phases == {"forward", "backward"}
  assert MosaicBlocks(**data["best"]["64"]).check() is None


def test_without_a_gpu_it_says_so(capsys):
  assert mosaic_sweep.main([]) == 2
  assert "needs a Hopper GPU (backend here: cpu); --dry-run on CPU" in capsys.readouterr().err


def test_a_candidate_replaces_the_start_only_when_clearly_faster():
  rng = np.random.default_rng(0)
  start, tie, fast = MosaicBlocks(), MosaicBlocks(stages=3), MosaicBlocks(forward_kv=64)
  times = lambda mean: list(rng.normal(mean, 0.05, 50))
  assert mosaic_sweep.pick(start, [(times(1.0), start), (times(1.0), tie)]) == start  # a tie keeps the start
  assert mosaic_sweep.pick(start, [(times(1.0), start), (times(1.0), tie), (times(0.8), fast)]) == fast
  assert mosaic_sweep.pick(start, [(times(1.0), tie), (times(0.8), fast)]) == fast  # the start failed
  assert mosaic_sweep.pick(start, []) == start
