"""Tests for ModelConfig validation and the size presets."""

import pytest

from aira_jax.models import PRESETS, ModelConfig, count_params, get_preset, preset_config


@pytest.mark.parametrize("changes, fragment", [
    (dict(d_model=100, num_heads=3), "num_heads=3 does not divide d_model=100; choose num_heads among"),
    (dict(num_heads=4, num_kv_heads=3), "num_kv_heads=3 does not divide num_heads=4"),
    (dict(ssm_head_dim=48), "ssm_head_dim=48 does not divide the SSM inner width"),
    (dict(ssm_groups=3), "ssm_groups=3 does not divide the SSM heads"),
    (dict(d_model=0), "d_model must be a positive integer"),
    (dict(mlp_activation="gelu"), "mlp_activation must be 'swiglu' or 'relu2'"),
    (dict(head_dim=7), "must be even for RoPE"),
    (dict(sliding_window=0), "sliding_window must be None or a positive integer"),
    (dict(logit_softcap=-1.0), "logit_softcap must be None or positive"),
    (dict(dtype="int8"), "dtype must be float32, bfloat16 or float16"),
    (dict(ssm_dt_min=0.5, ssm_dt_max=0.1), "ssm_dt_min <= ssm_dt_max"),
])
def test_bad_configs_say_what_to_change(changes, fragment):
  with pytest.raises(ValueError) as info:
    ModelConfig(**changes)
  assert fragment in str(info.value)


def test_explicit_head_dim_allows_heads_not_dividing_width():
  config = ModelConfig(d_model=96, num_heads=5, head_dim=16)
  assert config.resolved_head_dim == 16 and config.resolved_kv_heads == 5


def test_unknown_preset_and_unknown_override():
  with pytest.raises(ValueError, match="unknown model preset 'huge'; choose one of tiny, proxy, 350m, 1b, 3b"):
    get_preset("huge")
  with pytest.raises(ValueError, match="unknown ModelConfig fields"):
    preset_config("tiny", width=3)
  assert preset_config("tiny", vocab_size=16).vocab_size == 16


@pytest.mark.parametrize("name, expected_total", [("1b", 1_235_814_400), ("3b", 3_212_749_824)])
def test_llama_matched_presets_have_llama_parameter_counts(name, expected_total):
  # Llama 3.2 1B and 3B (tied embeddings) have exactly these many parameters; "AM" per block.
  preset = get_preset(name)
  assert count_params("AM" * (preset.depth // 2), preset.config).total == expected_total


def test_presets_are_ordered_by_size():
  sizes = [count_params("AM" * (p.depth // 2), p.config).total for p in PRESETS.values()]
  assert sizes == sorted(sizes)
  assert 3.3e8 < sizes[2] < 3.7e8  # 350m
  assert 1e6 < sizes[1] < 3e6  # proxy: million-parameter search scale
