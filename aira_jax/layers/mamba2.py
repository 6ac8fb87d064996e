"""The Mamba-2 primitive (S): a pre-norm residual selective state-space layer (Dao & Gu 2024).

Per layer: in-projections to z (gate), x, B, C and dt; a short causal depthwise convolution with SiLU over
(x, B, C); dt = softplus(dt + dt_bias); the SSD scan with one scalar decay A = -exp(A_log) per head and a skip D;
a gated RMSNorm (norm of y * silu(z)); the out-projection. The scan goes through the kernel seam
(`aira_jax.layers.kernels.ssd_scan`).

The fused in-projection of the reference implementation is kept as five separate matrices (same parameter count)
so that each can carry its own sharding. The gated norm normalises the whole inner width (one group).
Always causal: the `causal` argument exists only for a uniform layer signature.

Initialisation (as in mamba_ssm): A_log = log(U[1, 16]); dt_bias = softplus^-1(dt) with dt log-uniform in
[ssm_dt_min, ssm_dt_max]; D = 1; conv weights U[-1/sqrt(width), 1/sqrt(width)], bias 0; in-projections
Normal(0, init_std); out-projection Normal(0, init_std / sqrt(2 * depth)); norm scales 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from aira_jax.layers import kernels
from aira_jax.layers.norm import GatedRMSNorm, RMSNorm
from aira_jax.layers.params import along_last, normal, output_std, param, project, uniform
from aira_jax.model_config import ModelConfig


def causal_depthwise_conv(x: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
  """y[:, t] = bias + sum_k weight[k] * x[:, t - (width - 1) + k], zero before the sequence starts.

  x: (batch, seq, channels); weight: (width, channels); bias: (channels,).
  """
  width, seq = weight.shape[0], x.shape[1]
  padded = jnp.pad(x, ((0, 0), (width - 1, 0), (0, 0)))
  out = along_last(bias.astype(x.dtype), 3)
  for k in range(width):
    out = out + padded[:, k:k + seq] * along_last(weight[k].astype(x.dtype), 3)
  return out


def inverse_softplus(y: jax.Array) -> jax.Array:
  """x with softplus(x) = y, for y > 0."""
  return y + jnp.log(-jnp.expm1(-y))


class _Conv(nnx.Module):
  """A causal depthwise convolution's weight (width, channels) and bias (channels,)."""

  def __init__(self, channels: int, width: int, axis_name: str | None, rngs: nnx.Rngs, dtype):
    bound = 1.0 / math.sqrt(width)
    self.weight = param(uniform(rngs, (width, channels), -bound, bound, dtype), (None, axis_name))
    self.bias = param(jnp.zeros((channels,), dtype), (axis_name,))

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.silu(causal_depthwise_conv(x, self.weight[...], self.bias[...]))


class Mamba2Layer(nnx.Module):
  """x + Mamba2(RMSNorm(x)) on (batch, seq, d_model)."""

  def __init__(self, config: ModelConfig, *, depth: int, rngs: nnx.Rngs, causal: bool = True):
    del causal
    d, inner, heads = config.d_model, config.ssm_inner, config.ssm_heads
    bc = config.ssm_groups * config.ssm_state_dim
    dtype, std, width = config.stored_dtype, config.init_std, config.ssm_conv_width
    self.config = config
    self.norm = RMSNorm(d, eps=config.norm_eps, param_dtype=dtype)
    self.w_z = param(normal(rngs, (d, inner), std, dtype), ("embed", "ssm_inner"))
    self.w_x = param(normal(rngs, (d, inner), std, dtype), ("embed", "ssm_inner"))
    self.w_b = param(normal(rngs, (d, bc), std, dtype), ("embed", "ssm_state"))
    self.w_c = param(normal(rngs, (d, bc), std, dtype), ("embed", "ssm_state"))
    self.w_dt = param(normal(rngs, (d, heads), std, dtype), ("embed", "ssm_heads"))
    self.conv_x = _Conv(inner, width, "ssm_inner", rngs, dtype)
    self.conv_b = _Conv(bc, width, "ssm_state", rngs, dtype)
    self.conv_c = _Conv(bc, width, "ssm_state", rngs, dtype)
    log_dt = uniform(rngs, (heads,), math.log(config.ssm_dt_min), math.log(config.ssm_dt_max), jnp.float32)
    dt = jnp.maximum(jnp.exp(log_dt), 1e-4)
    self.dt_bias = param(inverse_softplus(dt).astype(dtype), ("ssm_heads",))
    self.a_log = param(jnp.log(uniform(rngs, (heads,), 1.0, 16.0, jnp.float32)).astype(dtype), ("ssm_heads",))
    self.d_skip = param(jnp.ones((heads,), dtype), ("ssm_heads",))
    self.out_norm = GatedRMSNorm(inner, eps=config.norm_eps, param_dtype=dtype)
    self.w_out = param(normal(rngs, (inner, d), output_std(std, depth), dtype), ("ssm_inner", "embed"))

  def __call__(self, x: jax.Array, *, positions: jax.Array | None = None) -> jax.Array:
    del positions
    config = self.config
    batch, seq, _ = x.shape
    heads, groups, state = config.ssm_heads, config.ssm_groups, config.ssm_state_dim
    h = self.norm(x)
    z = project(h, self.w_z[...], "bsd,de->bse")
    xs = self.conv_x(project(h, self.w_x[...], "bsd,de->bse"))
    b = self.conv_b(project(h, self.w_b[...], "bsd,dn->bsn"))
    c = self.conv_c(project(h, self.w_c[...], "bsd,dn->bsn"))
    dt_raw = project(h, self.w_dt[...], "bsd,dh->bsh").astype(jnp.float32)
    dt = jax.nn.softplus(dt_raw + along_last(self.dt_bias[...].astype(jnp.float32), 3))
    a = -jnp.exp(self.a_log[...].astype(jnp.float32))
    y = kernels.ssd_scan(
        xs.reshape(batch, seq, heads, config.ssm_head_dim), dt, a,
        b.reshape(batch, seq, groups, state), c.reshape(batch, seq, groups, state),
        self.d_skip[...].astype(jnp.float32), chunk_size=config.ssm_chunk_size, impl=config.scan_impl)
    y = self.out_norm(y.reshape(batch, seq, config.ssm_inner), z)
    return x + project(y, self.w_out[...], "bse,ed->bsd")


def mamba2_param_count(config: ModelConfig) -> int:
  """Parameters of one Mamba2Layer: norm; z, x, B, C, dt in-projections; the depthwise convolutions (weights
  and bias) over x, B and C; dt_bias, A_log and D per head; the gated norm; the out-projection."""
  d, e, heads = config.d_model, config.ssm_inner, config.ssm_heads
  bc = config.ssm_groups * config.ssm_state_dim
  conv_channels = e + 2 * bc
  return d + 2 * d * e + 2 * d * bc + d * heads + (config.ssm_conv_width + 1) * conv_channels + 3 * heads + e + e * d


def mamba2_flops_per_token(config: ModelConfig, seq_len: int, *, causal_context: bool = False) -> float:
  """Forward matrix-product FLOPs per token (e = inner width, H heads, g groups, n state, Q chunk):
  2 * (2*d*e + 2*d*g*n + d*H + e*d) projections, 2 * width * (e + 2*g*n) depthwise convolution, and the
  chunked SSD: 2 * Q * (g*n + e) within-chunk scores and outputs plus 4 * e * n chunk states and their
  read-out. The scan is causal by construction, so `causal_context` changes nothing."""
  del causal_context
  d, e, heads, n = config.d_model, config.ssm_inner, config.ssm_heads, config.ssm_state_dim
  gn = config.ssm_groups * n
  chunk = min(config.ssm_chunk_size, seq_len)
  projections = 2 * (2 * d * e + 2 * d * gn + d * heads + e * d)
  conv = 2 * config.ssm_conv_width * (e + 2 * gn)
  scan = 2 * chunk * (gn + e) + 4 * e * n
  return projections + conv + scan
