"""Training FLOPs per token of a scale-stage model, by a named counting convention (`scale.flops`).

The isoFLOP study gives every (family, width) run the token count D = C / F, with F the training FLOPs per
token, so that every family really spends the budget C. Three conventions:
  xla       XLA's cost analysis of one forward + backward pass of the family's own dense `LanguageModel`
            (loss included, optimizer excluded) at `seq_len`, divided by the tokens in the batch. It counts
            what the hardware executes: matmuls, attention scores, the SSM scan and the elementwise work
            (norms, activations, softmax). Read from the lowered (uncompiled) program with abstract
            parameters: no memory for weights, no compile. Default.
  analytic  `aira_jax.models.flops_per_token(..., training=True)`: matrix products only (projections,
            attention scores, SSM scan) x 3. It counts less than XLA, the more so the narrower the model
            (elementwise work is a larger share of tiny models).
  6n        the Chinchilla convention 6 N (N = all parameters). It leaves out attention scores and the scan,
            so at small widths and short sequences it counts well under XLA's FLOPs, unequally across
            families: a comparison at "equal 6N compute" gives attention-heavy families more real compute.
            Kept only to reproduce papers that use it.
How far each falls short of XLA's count per family and width: experiments/bench/RESULTS.md, issue 19,
"Compute-exact budgets, racing, verdicts".
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from aira_jax import primitives
from aira_jax.layout import Layout
from aira_jax.model_config import ModelConfig
from aira_jax.models import LanguageModel, flops_per_token
from aira_jax.models.counting import count_params

METHODS = ("xla", "analytic", "6n")

DESCRIPTIONS = {
    "xla": "XLA's cost analysis of one forward + backward pass of each model (matmuls, attention scores, SSM "
           "scan and elementwise work), per token at the study's sequence length",
    "analytic": "matrix-product FLOPs of forward + backward (3x forward: projections, attention scores, SSM "
                "scan; aira_jax.models.flops_per_token), per token at the study's sequence length",
    "6n": "6 N per token (N = all parameters; attention scores and the SSM scan are not counted)",
}
"""One phrase per method, for reports."""

_MEASURE_BATCH = 2
"""Rows in the batch whose cost XLA analyses (FLOPs are linear in the batch, so any size gives the same rate)."""


def _cost_flops(lowered) -> float:
  analysis = lowered.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"])


@functools.lru_cache(maxsize=256)
def _xla_training_flops_per_token(layout: Layout, config: ModelConfig, seq_len: int,
                                  kinds: tuple[primitives.Primitive, ...]) -> float:
  """`kinds` (the layout's registered primitives) only keys the cache: a symbol registered again with another
  layer (tests do) is measured again."""
  del kinds
  abstract = nnx.eval_shape(lambda: LanguageModel(layout, config, rngs=nnx.Rngs(0)))
  graphdef, params = nnx.split(abstract)
  tokens = jax.ShapeDtypeStruct((_MEASURE_BATCH, seq_len), jnp.int32)

  def loss(params, tokens):
    logits = nnx.merge(graphdef, params)(tokens)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., None], axis=-1))

  return _cost_flops(jax.jit(jax.grad(loss)).lower(params, tokens)) / (_MEASURE_BATCH * seq_len)


def training_flops_per_token(layout: Layout, config: ModelConfig, seq_len: int, method: str = "xla") -> float:
  """Training (forward + backward) FLOPs per token of `layout` at `config` by `method` (module docstring)."""
  if method == "xla":
    kinds = tuple(primitives.get_primitive(symbol) for symbol in sorted(set(layout)))
    return _xla_training_flops_per_token(layout, config, seq_len, kinds)
  if method == "analytic":
    return flops_per_token(layout, config, seq_len, training=True)
  if method == "6n":
    return 6.0 * count_params(layout, config).total
  raise ValueError(f"unknown FLOPs method {method!r}; choose from {', '.join(METHODS)}")
