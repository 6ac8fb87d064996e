"""Tests for `experiments/bench/kernels.py`'s shape selection (--shapes, --max-shapes) and its skip rules."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

import _cases  # noqa: E402
import kernels  # noqa: E402


def test_shapes_filter_keeps_matching_labels_in_order():
  targets = _cases.cases("targets")
  chosen = kernels.select_cases(targets, ["attention", "ssd"], "s2048,L8192", None)
  assert [c.label for c in chosen["attention"]] == [
      c.label for c in targets["attention"] if "s2048" in c.label]
  assert len(chosen["attention"]) == 2
  assert [c.label for c in chosen["ssd"]] == [c.label for c in targets["ssd"] if "L8192" in c.label]


def test_max_shapes_applies_after_the_filter():
  chosen = kernels.select_cases(_cases.cases("targets"), ["attention"], "d64", 2)
  assert len(chosen["attention"]) == 2 and all("d64" in c.label for c in chosen["attention"])


def test_no_match_exits_with_the_labels():
  with pytest.raises(SystemExit, match="no shape of attention matches --shapes 'zzz'.*s8192"):
    kernels.select_cases(_cases.cases("targets"), ["attention"], "zzz", None)


@pytest.mark.parametrize("impl", ["cudnn", "mosaic"])
def test_16_bit_gpu_impls_skip_float32_and_non_gpu_backends(impl):
  assert "16-bit" in kernels.skip_reason("attention", impl, "gpu", "float32")
  assert kernels.skip_reason("attention", impl, "gpu", "bfloat16") is None
  assert "needs gpu" in kernels.skip_reason("attention", impl, "cpu", "bfloat16")
