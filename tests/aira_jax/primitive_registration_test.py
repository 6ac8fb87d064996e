"""One `register_primitive(...)` call makes a new primitive work everywhere (aira_jax/primitives.py).

The new primitive, C, is a gated causal depthwise short convolution (the short convolution of H3 / Hyena,
gated as in Mamba's output) defined in this module. Registered once for the module, it goes through layout
parsing, the LanguageModel, exact parameter counting, analytic FLOPs against XLA's cost analysis, the scale
stage's three FLOPs methods and its trainer, the switch model (equal to the dedicated model) and the compose
evaluator. The
fixture unregisters it, so no other test sees it.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aira_jax import primitives
from aira_jax.compose.config import ComposeConfig, EvaluatorConfig, ScaleConfig
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.compose.flops import METHODS, training_flops_per_token
from aira_jax.compose.scale import _PointTrainer, scale_task, width_config
from aira_jax.compose.switch_model import SwitchLanguageModel, load_dedicated
from aira_jax.layers.mamba2 import causal_depthwise_conv
from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import normal, output_std, param, project, uniform
from aira_jax.layout import Layout
from aira_jax.models import (LanguageModel, ModelConfig, count_params, flops_per_token, layer_param_count,
                             preset_config)
from aira_jax.train.step import lm_loss
from testing_utils import assert_causal, num_params

SYMBOL = "C"


class ShortConvLayer(nnx.Module):
  """x + W_out(silu(g) * conv(u)), [u, g] = W_in RMSNorm(x): a causal depthwise convolution over the last
  `config.ssm_conv_width` positions, gated. Causal by construction, so `causal` is ignored."""

  def __init__(self, config: ModelConfig, *, depth: int, rngs: nnx.Rngs, causal: bool = True):
    del causal
    d, width, dtype = config.d_model, config.ssm_conv_width, config.stored_dtype
    self.norm = RMSNorm(d, eps=config.norm_eps, param_dtype=dtype)
    self.w_in = param(normal(rngs, (d, 2 * d), config.init_std, dtype), ("embed", "mlp"))
    bound = 1.0 / math.sqrt(width)
    self.conv_weight = param(uniform(rngs, (width, d), -bound, bound, dtype), (None, "mlp"))
    self.conv_bias = param(jnp.zeros((d,), dtype), ("mlp",))
    self.w_out = param(normal(rngs, (d, d), output_std(config.init_std, depth), dtype), ("mlp", "embed"))

  def __call__(self, x: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    del positions
    values, gate = jnp.split(project(self.norm(x), self.w_in[...], "bsd,de->bse"), 2, axis=-1)
    mixed = causal_depthwise_conv(values, self.conv_weight[...], self.conv_bias[...])
    return x + project(jax.nn.silu(gate) * mixed, self.w_out[...], "bse,ed->bsd")


def short_conv_param_count(config: ModelConfig) -> int:
  d = config.d_model
  return d + 2 * d * d + (config.ssm_conv_width + 1) * d + d * d


def short_conv_flops_per_token(config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """In-projection 2 * 2d^2, the convolution's multiply-adds 2 * width * d, out-projection 2 * d^2."""
  del seq_len, causal_context
  d = config.d_model
  return 2 * 2 * d * d + 2 * config.ssm_conv_width * d + 2 * d * d


def _register(symbol: str):
  return primitives.registered_primitive(
      symbol, "short_conv", "gated causal depthwise short convolution (test primitive)",
      f"{__name__}:ShortConvLayer", param_count=f"{__name__}:short_conv_param_count",
      flops=f"{__name__}:short_conv_flops_per_token")


@pytest.fixture(scope="module", autouse=True)
def short_conv():
  before = primitives.alphabet()
  with _register(SYMBOL) as primitive:
    yield primitive
  assert primitives.alphabet() == before


TINY = preset_config("tiny", vocab_size=64)


def _tokens(seed=0, batch=2, seq=16, vocab=64):
  return jax.random.randint(jax.random.key(seed), (batch, seq), 0, vocab)


def test_layouts_parse_the_new_symbol():
  assert SYMBOL in primitives.alphabet()
  layout = Layout.parse("2C+2M", space="CM")
  assert layout == Layout(("C", "C", "M", "M")) and layout.counts()[SYMBOL] == 2
  assert Layout.parse(layout.run_length()) == layout
  with pytest.raises(ValueError, match="primitive 'C' is outside the search space AM"):
    Layout.parse("2C+2M", space="AM")


def test_language_model_runs_and_counts_its_parameters_exactly():
  model = LanguageModel("2C+2M", TINY, rngs=nnx.Rngs(0))
  tokens = _tokens()
  logits = model(tokens)
  assert logits.shape == (2, 16, TINY.vocab_size) and bool(jnp.all(jnp.isfinite(logits)))
  assert_causal(model, tokens, position=5)
  assert count_params("2C+2M", TINY).total == num_params(model)
  assert layer_param_count(SYMBOL, TINY) == num_params(model.layers[0])


def _xla_flops(fn, *args) -> float:
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"])


def test_analytic_flops_match_xla_cost_analysis():
  # As tests/aira_jax/models/counting_test.py does for A, M and S, at the same width and tolerance.
  config = preset_config("proxy", vocab_size=64)
  batch, seq, layout = 2, 64, "2C+2M"
  graphdef, state = nnx.split(LanguageModel(layout, config, rngs=nnx.Rngs(0)))
  tokens = jnp.zeros((batch, seq), jnp.int32)
  forward = lambda s, t: jnp.sum(nnx.merge(graphdef, s)(t))
  forward_ratio = _xla_flops(forward, state, tokens) / (flops_per_token(layout, config, seq) * batch * seq)
  training_ratio = (_xla_flops(jax.grad(forward), state, tokens)
                    / (flops_per_token(layout, config, seq, training=True) * batch * seq))
  assert 0.97 < forward_ratio < 1.07, forward_ratio
  assert 0.88 < training_ratio < 1.08, training_ratio


def test_scale_stage_counts_the_new_primitive_by_every_method():
  seq_len, layout = 64, Layout.parse("C+A+C+M")
  config = width_config(preset_config("proxy"), 16, 256, seq_len)
  flops = {method: training_flops_per_token(layout, config, seq_len, method) for method in METHODS}
  assert flops["analytic"] == flops_per_token(layout, config, seq_len, training=True)
  assert flops["6n"] == 6 * count_params(layout, config).total
  # XLA also counts the elementwise work the analytic count leaves out (7-12% at widths 8-16; compose/flops.py).
  assert 1.0 < flops["xla"] / flops["analytic"] < 1.2, flops


def test_a_symbol_registered_again_is_measured_again():
  # compose/flops.py caches XLA's count per layout; the primitive behind a symbol is part of the key.
  config, layout = width_config(preset_config("proxy"), 16, 256, 32), Layout.parse("2C")
  conv = training_flops_per_token(layout, config, 32, "xla")
  short_conv = primitives.unregister_primitive(SYMBOL)
  try:
    with primitives.registered_primitive(SYMBOL, "mlp_again", "", "aira_jax.layers.mlp:MLPLayer",
                                         param_count="aira_jax.layers.mlp:mlp_param_count",
                                         flops="aira_jax.layers.mlp:mlp_flops_per_token"):
      as_mlp = training_flops_per_token(layout, config, 32, "xla")
      assert as_mlp == training_flops_per_token(Layout.parse("2M"), config, 32, "xla")
  finally:
    primitives._REGISTRY[SYMBOL] = short_conv  # the module fixture removes this very object at the end
  assert as_mlp != conv
  assert training_flops_per_token(layout, config, 32, "xla") == conv


def test_switch_model_matches_the_dedicated_model():
  layout, space = "CMAC", "AMC"
  model = LanguageModel(layout, TINY, rngs=nnx.Rngs(1))
  switch = SwitchLanguageModel(TINY, 4, space, rngs=nnx.Rngs(2))
  load_dedicated(switch, model)
  tokens = _tokens(seed=3, seq=17)
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  loss, _ = lm_loss(model(inputs), targets)
  switch_loss, _ = lm_loss(switch(inputs, switch.kinds(layout)), targets)
  np.testing.assert_allclose(float(switch_loss), float(loss), rtol=1e-6)


def test_compose_evaluator_scores_layouts_with_the_new_primitive():
  # Two layers and two primitives keep the one switch program small (its compile is most of this test).
  config = EvaluatorConfig(task="mad-lite", mad_tasks=("in_context_recall",), steps=2, batch_size=4,
                           eval_examples=8, model={"d_model": 16, "num_heads": 2, "ffn_dim": 32, "ssm_head_dim": 8})
  evaluator = LayoutEvaluator(config, space="MC", depth=2, devices=jax.devices()[:1])
  for text in ("CM", "2C"):
    evaluation = evaluator.evaluate(text)
    assert not evaluation.is_buggy, evaluation.error
    assert math.isfinite(evaluation.metric) and 0.0 <= evaluation.metric <= 1.0
  with pytest.raises(ValueError, match="outside the search space"):
    LayoutEvaluator(config, space="AM", depth=2).evaluate("CM")


def test_registration_errors_and_removal():
  with pytest.raises(ValueError, match="already registered"):
    _register(SYMBOL).__enter__()
  with pytest.raises(ValueError, match="'module:attribute'"):
    primitives.register_primitive("Q", "bad", "", "aira_jax.layers.mlp:MLPLayer", param_count="no_colon",
                                  flops="x:y")
  with _register("Q"):
    assert Layout.parse("QA").counts()["Q"] == 1
  assert "Q" not in primitives.alphabet()
  with pytest.raises(ValueError, match="unknown primitive 'Q'"):
    Layout.parse("QA")
  with pytest.raises(ValueError, match="unknown primitive 'Q'"):
    primitives.unregister_primitive("Q")


def test_scale_stage_trains_and_scores_a_point_of_the_new_primitive(tmp_path):
  """The scale stage's trainer (a switch program over "CM", the one training loop) trains an isoFLOP point of a
  layout with the new primitive; it learns (validation loss well under the uniform ln 257)."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n\n".join(f"document {i}: " + " ".join(f"w{(i * j) % 37}" for j in range(30))
                                for i in range(150)))
  scale = ScaleConfig(widths=(16,), head_dim=4, seq_len=16, batch_size=8, eval_tokens=128, trainer="switch",
                      task_options={"path": str(corpus)})
  config = ComposeConfig(scale=scale, evaluator=EvaluatorConfig(model={"d_model": 16, "num_heads": 2,
                                                                       "ffn_dim": 32, "ssm_head_dim": 8}))
  task = scale_task(config)
  model_config = width_config(preset_config("proxy", **config.evaluator.model), 16, task.spec.vocab_size, 16,
                              head_dim=4)
  layout = Layout.parse("CMCM", space="CM")
  scores = _PointTrainer(config, task, "CM").train(layout, model_config, tokens=8 * 16 * 40, seed=0)
  assert scores["steps"] == 40 and math.isfinite(scores["loss"]) and scores["loss"] < math.log(257) - 1.0
