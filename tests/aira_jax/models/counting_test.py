"""Tests for exact parameter counts and analytic FLOPs (checked against XLA's cost analysis on CPU)."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from aira_jax.models import LanguageModel, count_params, flops_per_token, layer_param_count, preset_config
from aira_jax.models.counting import attention_context
from testing_utils import num_params

CONFIG_VARIANTS = [
    dict(),
    dict(tie_embeddings=False, qk_norm=True),
    dict(mlp_activation="relu2", num_kv_heads=1, ssm_groups=2),
    dict(num_heads=2, head_dim=24, ssm_expand=3, ssm_head_dim=12, ssm_conv_width=3),
]


@pytest.mark.parametrize("changes", CONFIG_VARIANTS)
def test_parameter_counts_are_exact(changes):
  config = preset_config("tiny", **changes)
  model = LanguageModel("AMSMA", config, rngs=nnx.Rngs(0))
  counted = count_params("AMSMA", config)
  assert counted.total == num_params(model)
  for layer, symbol in zip(model.layers, "AMSMA"):
    assert layer_param_count(symbol, config) == num_params(layer)
  assert counted.embedding == config.vocab_size * config.d_model
  assert counted.head == (0 if config.tie_embeddings else config.vocab_size * config.d_model)
  assert counted.non_embedding == counted.total - counted.embedding - counted.head


def _xla_flops(fn, *args) -> float:
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"])


# Tolerance: the analytic count leaves out elementwise work (norms, activations, softmax, the scan's decays),
# which XLA counts; measured within 5% forward and 8% training at width 128 on jax 0.10.2.
@pytest.mark.parametrize("layout", ["A", "M", "S", "AMSM"])
def test_flops_match_xla_cost_analysis(layout):
  config = preset_config("proxy", vocab_size=64, ssm_chunk_size=32)
  batch, seq = 2, 64
  graphdef, state = nnx.split(LanguageModel(layout, config, rngs=nnx.Rngs(0)))
  toks = jnp.zeros((batch, seq), jnp.int32)
  forward = lambda s, t: jnp.sum(nnx.merge(graphdef, s)(t))
  tokens_total = batch * seq
  forward_ratio = _xla_flops(forward, state, toks) / (flops_per_token(layout, config, seq) * tokens_total)
  training_ratio = (_xla_flops(jax.grad(forward), state, toks)
                    / (flops_per_token(layout, config, seq, training=True) * tokens_total))
  assert 0.97 < forward_ratio < 1.07, forward_ratio
  assert 0.88 < training_ratio < 1.08, training_ratio


def test_flops_scale_with_parts():
  config = preset_config("proxy")
  # The attention score term grows with the context; the MLP's does not.
  assert flops_per_token("M", config, 512) == flops_per_token("M", config, 64)
  growth = flops_per_token("A", config, 512) - flops_per_token("A", config, 64)
  assert growth == pytest.approx(4 * config.num_heads * config.resolved_head_dim * (512 - 64))
  assert flops_per_token("AM", config, 64, training=True) == 3 * flops_per_token("AM", config, 64)
  # Causal context: (seq + 1) / 2 keys per query on average, capped by a sliding window.
  assert attention_context(config, 64, causal_context=True) == pytest.approx(32.5)
  windowed = config.replace(sliding_window=8)
  assert attention_context(windowed, 64, causal_context=True) == pytest.approx((36 + 8 * 56) / 64)
