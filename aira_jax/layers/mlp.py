"""The MLP primitive (M): a pre-norm residual position-wise MLP.

"swiglu" (default, Llama): down(silu(gate(x)) * up(x)); "relu2" (Primer, modded-nanoGPT, autoresearch):
down(relu(up(x))^2). Initialisation: gate and up Normal(0, init_std); down Normal(0, init_std / sqrt(2 *
depth)); norm scale ones.
"""

from __future__ import annotations

import jax
from flax import nnx

from aira_jax.layers.norm import RMSNorm
from aira_jax.layers.params import normal, output_std, param, project
from aira_jax.model_config import ModelConfig


class MLPLayer(nnx.Module):
  """x + MLP(RMSNorm(x)) on (batch, seq, d_model). `causal` is accepted for a uniform signature (an MLP mixes
  no positions)."""

  def __init__(self, config: ModelConfig, *, depth: int, rngs: nnx.Rngs, causal: bool = True):
    del causal
    d, f, dtype = config.d_model, config.ffn_dim, config.stored_dtype
    self.activation = config.mlp_activation
    self.norm = RMSNorm(d, eps=config.norm_eps, param_dtype=dtype)
    if self.activation == "swiglu":
      self.w_gate = param(normal(rngs, (d, f), config.init_std, dtype), ("embed", "mlp"))
    self.w_up = param(normal(rngs, (d, f), config.init_std, dtype), ("embed", "mlp"))
    self.w_down = param(normal(rngs, (f, d), output_std(config.init_std, depth), dtype), ("mlp", "embed"))

  def __call__(self, x: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    del positions
    h = self.norm(x)
    up = project(h, self.w_up[...], "bsd,df->bsf")
    if self.activation == "swiglu":
      hidden = jax.nn.silu(project(h, self.w_gate[...], "bsd,df->bsf")) * up
    else:
      hidden = jax.numpy.square(jax.nn.relu(up))
    return x + project(hidden, self.w_down[...], "bsf,fd->bsd")


def mlp_param_count(config: ModelConfig) -> int:
  """Parameters of one MLPLayer: norm plus 3 (SwiGLU) or 2 (ReLU^2) d_model x ffn_dim matrices."""
  matrices = 3 if config.mlp_activation == "swiglu" else 2
  return config.d_model + matrices * config.d_model * config.ffn_dim


def mlp_flops_per_token(config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """Forward matrix-product FLOPs per token: 2 * 3*d*f (SwiGLU) or 2 * 2*d*f (ReLU^2), whatever the length."""
  del seq_len, causal_context
  matrices = 3 if config.mlp_activation == "swiglu" else 2
  return 2 * matrices * config.d_model * config.ffn_dim
