"""Tests for `experiments/bench/auto_choices.py` (a kernels.py GPU run -> impl="auto"'s measured choices) and for how
`flash_attention` applies those choices."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))

import auto_choices  # noqa: E402
from pallas_kernels import _dispatch  # noqa: E402
from pallas_kernels.attention import api, tiling  # noqa: E402

# (head_dim, seq) -> {impl: (mean ms, status)}; per-call times are drawn around the mean with sd 0.1 ms.
_MEASURED = {
    (64, 2048): {"pallas": (10.0, "ok"), "mosaic": (11.0, "ok"), "cudnn": (10.0, "ok")},
    (64, 4096): {"pallas": (10.0, "ok"), "mosaic": (11.0, "ok"), "cudnn": (5.0, "ERR>0.02 in dq")},
    (64, 8192): {"pallas": (10.0, "ok"), "mosaic": (11.0, "ok"), "cudnn": (9.0, "ok")},
    (128, 2048): {"pallas": (10.0, "ok"), "mosaic": (10.0, "ok")},
    (128, 4096): {"pallas": (10.0, "ok"), "mosaic": (8.0, "ok"), "cudnn": (9.0, "ok")},
    (128, 8192): {"pallas": (10.0, "ok"), "mosaic": (7.0, "ok"), "cudnn": (9.5, "ok")},
}


def _bench_file(tmp_path, capability="9.0"):
  rng = np.random.default_rng(0)
  rows = []
  for (head_dim, seq), impls in _MEASURED.items():
    for impl, (mean, status) in impls.items():
      times = list(rng.normal(mean, 0.1, 60))
      rows.append(dict(kernel="attention", shape=f"b2 s{seq} h16/16 d{head_dim} causal", dtype="bfloat16",
                       impl=impl, status=status, fwdbwd=dict(median=float(np.median(times)), times=times)))
  path = tmp_path / "bench.json"
  path.write_text(json.dumps(dict(env=dict(compute_capability=capability), rows=rows)))
  return path


def _printed_choices(text):
  lines = [line.strip().rstrip(",") for line in text.splitlines() if line.strip().startswith("MeasuredChoice(")]
  return [eval(line, {"MeasuredChoice": _dispatch.MeasuredChoice}) for line in lines]  # noqa: S307 (own output)


def test_only_clear_wins_of_ok_rows_become_choices(tmp_path, capsys):
  assert auto_choices.main([str(_bench_file(tmp_path)), "--source", "RESULTS.md, test"]) == 0
  out = capsys.readouterr().out
  source = dict(kernel="flash_attention", capability_major=9, impl=None, source="RESULTS.md, test")
  assert _printed_choices(out) == [
      _dispatch.MeasuredChoice(**{**source, "impl": "cudnn"}, min_head_dim=1, max_head_dim=64, min_seq=8192,
                               max_seq=auto_choices.LONGEST),
      _dispatch.MeasuredChoice(**{**source, "impl": "mosaic"}, min_head_dim=65, max_head_dim=128, min_seq=4096,
                               max_seq=auto_choices.LONGEST),  # 4096 and 8192 merged
  ]
  table = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| b2")}
  assert "tie (interval holds 1)" in table["b2 s2048 h16/16 d128 causal"]
  assert "slower (0.91x)" in table["b2 s2048 h16/16 d64 causal"]
  assert "ERR>0.02 in dq" in table["b2 s4096 h16/16 d64 causal"]  # the fast but wrong row never wins
  assert table["b2 s4096 h16/16 d64 causal"].rstrip(" |").endswith("pallas")
  assert "faster (1.43x)" in table["b2 s8192 h16/16 d128 causal"]


def test_the_ratio_interval_brackets_the_ratio_of_medians():
  rng = np.random.default_rng(1)
  a = rng.normal(10, 1, 200)
  ratio, lo, hi = auto_choices.ratio_interval(a, a / 2)
  assert ratio == pytest.approx(2.0) and lo < 2.0 < hi < 2.5
  ratio, lo, hi = auto_choices.ratio_interval(a, rng.normal(10, 1, 200))
  assert lo < 1 < hi


@pytest.mark.parametrize("capability, message", [("", "one GPU generation with a recorded compute capability")])
def test_a_file_without_the_gpu_generation_is_refused(tmp_path, capsys, capability, message):
  assert auto_choices.main([str(_bench_file(tmp_path, capability)), "--source", "x"]) == 2
  assert message in capsys.readouterr().err


def test_an_unreadable_file_is_one_line(tmp_path, capsys):
  assert auto_choices.main([str(tmp_path / "missing.json"), "--source", "x"]) == 2
  assert capsys.readouterr().err.startswith("error: cannot read")


@pytest.fixture
def measured(monkeypatch, tmp_path, capsys):
  """MEASURED_CHOICES as auto_choices prints them for the synthetic run, on a pretend sm_90 GPU."""
  auto_choices.main([str(_bench_file(tmp_path)), "--source", "test"])
  monkeypatch.setattr(_dispatch, "MEASURED_CHOICES", tuple(_printed_choices(capsys.readouterr().out)))
  monkeypatch.setattr(tiling, "gpu_compute_capability", lambda: "9.0")


@pytest.mark.parametrize("head_dim, seq, expected", [
    (128, 4096, "mosaic"), (80, 100_000, "mosaic"), (128, 3000, None), (64, 8192, "cudnn"), (64, 4096, None),
])
def test_measured_choices_apply_per_shape_range(measured, head_dim, seq, expected):
  assert _dispatch.measured_choice("flash_attention", capability_major=9, head_dim=head_dim, seq=seq) == expected
  assert _dispatch.measured_choice("flash_attention", capability_major=8, head_dim=head_dim, seq=seq) is None


def _spec(shape, dtype):
  return jax.ShapeDtypeStruct(shape, dtype)


@pytest.mark.parametrize("dtype, options, expected", [
    (jnp.bfloat16, {}, "mosaic"),
    (jnp.float32, {}, None),  # the measurements are 16-bit
])
def test_flash_attention_takes_a_measured_choice_only_where_it_applies(measured, dtype, options, expected):
  q = _spec((1, 4096, 4, 128), dtype)
  kw = dict(causal=True, sliding_window=None, softcap=None, scale=None, score_mod=None, mask_mod=None, **options)
  assert api.measured_on_this_gpu(q, q, q, kw) == expected


def test_a_measured_cudnn_choice_yields_to_options_cudnn_lacks(measured):
  q = _spec((1, 8192, 4, 64), jnp.bfloat16)
  kw = dict(causal=True, sliding_window=None, softcap=None, scale=None, score_mod=None, mask_mod=None)
  assert api.measured_on_this_gpu(q, q, q, kw) == "cudnn"
  assert api.measured_on_this_gpu(q, q, q, {**kw, "softcap": 30.0}) is None
  decode = _spec((1, 100, 4, 64), jnp.bfloat16)  # causal with q_len != kv_len: cuDNN aligns it top-left
  assert api.measured_on_this_gpu(decode, q, q, kw) is None
