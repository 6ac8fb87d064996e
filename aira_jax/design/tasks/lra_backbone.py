"""The fixed LRA backbone that wraps an agent's sequence mixer, and the hyper-parameters it accepts.

The agent's `model.py` supplies only the mixer; everything here is the harness's and cannot be changed by it:

  tokens -> embedding Normal(0, 1) + fixed sinusoidal positions (Vaswani et al.; every mechanism sees absolute
  position, a relative one - ALiBi, windows, recurrences - adds its own on top)
  -> num_layers x [x + Mixer(RMSNorm(x), mask); x + MLP(RMSNorm(x))]   (GELU MLP of ffn_mult * d_model)
  -> RMSNorm -> mean over real tokens (mask) -> linear classifier.
  Dual tower (Retrieval): both documents through the same encoder; the head is dense+relu+linear over
  [u, v, u * v, u - v], as the LRA reference models.

`mask` (batch, seq) bool is True on real tokens (PAD = 0 is padding; LRA sequences are right-padded).
In hooks mode the mixer is `HookAttention`: standard multi-head attention through
`pallas_kernels.flash_attention` with the agent's `score_mod` / `mask_mod`; the hooks see positions and heads
but not the batch, so padded keys stay visible to it (as in `aira_jax.models.classifier`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import pallas_kernels
from aira_jax.layers.norm import RMSNorm

PAD = 0

# name -> (type, low, high): the keys a configurable-setting `HYPERPARAMETERS` may set, with inclusive ranges.
HYPERPARAMETER_RANGES: dict[str, tuple[type, float, float]] = {
    "d_model": (int, 8, 512),
    "num_heads": (int, 1, 16),
    "num_layers": (int, 1, 8),
    "ffn_mult": (int, 1, 8),
    "lr": (float, 1e-5, 1e-1),
    "weight_decay": (float, 0.0, 0.5),
    "warmup_fraction": (float, 0.0, 0.5),
}


def validate_hyperparameters(values: Any, base: dict[str, Any] | None) -> dict[str, Any]:
  """`base` updated with the agent's `HYPERPARAMETERS`; ValueError naming each bad key, type or range (and
  num_heads not dividing d_model, when both are known)."""
  if not isinstance(values, dict):
    raise ValueError(f"HYPERPARAMETERS must be a dict, got {type(values).__name__}")
  problems = []
  out = dict(base or {})
  for key, value in values.items():
    if key not in HYPERPARAMETER_RANGES:
      problems.append(f"unknown key {key!r} (allowed: {', '.join(sorted(HYPERPARAMETER_RANGES))})")
      continue
    kind, low, high = HYPERPARAMETER_RANGES[key]
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
      ok_type = ok_type and float(value).is_integer()
    if not ok_type:
      problems.append(f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}")
    elif not low <= value <= high:
      problems.append(f"{key}={value!r} is out of range [{low}, {high}]")
    else:
      out[key] = kind(value)
  if not problems and "d_model" in out and "num_heads" in out and out["d_model"] % out["num_heads"]:
    problems.append(f"num_heads={out['num_heads']} must divide d_model={out['d_model']}")
  if problems:
    raise ValueError("HYPERPARAMETERS rejected: " + "; ".join(problems))
  return out


def sinusoidal_positions(seq_len: int, d_model: int) -> np.ndarray:
  """(seq_len, d_model) float32: sin on even features, cos on odd ones, wavelengths 2pi .. 10000 * 2pi."""
  position = np.arange(seq_len, dtype=np.float64)[:, None]
  rate = np.exp(-math.log(10_000.0) * (np.arange(d_model) // 2 * 2) / d_model)[None, :]
  angle = position * rate
  return np.where(np.arange(d_model)[None, :] % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def _normal(rngs: nnx.Rngs, shape, std: float) -> nnx.Param:
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, jnp.float32))


class HookAttention(nnx.Module):
  """Bidirectional multi-head attention through the fused flash-attention kernel with the agent's hooks.

  `impl` ("auto": the XLA path on CPU, Pallas on GPU/TPU) and `backend` (cross-lowering) go to
  `pallas_kernels.flash_attention`."""

  def __init__(self, d_model: int, num_heads: int, *, score_mod: Callable | None, mask_mod: Callable | None,
               rngs: nnx.Rngs, impl: str = "auto"):
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    self.score_mod, self.mask_mod, self.impl = score_mod, mask_mod, impl
    self.w_qkv = _normal(rngs, (d_model, 3, num_heads, self.head_dim), d_model ** -0.5)
    self.w_out = _normal(rngs, (num_heads, self.head_dim, d_model), d_model ** -0.5)

  def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, backend: str | None = None) -> jax.Array:
    """The kernel call alone, on (batch, seq, heads, head_dim)."""
    impl = "pallas" if backend else self.impl
    return pallas_kernels.flash_attention(q, k, v, causal=False, score_mod=self.score_mod, mask_mod=self.mask_mod,
                                          impl=impl, _backend=backend)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    del mask  # the hooks cannot see the batch; see the module docstring
    qkv = jnp.einsum("bsd,dthk->tbshk", x, self.w_qkv[...])
    out = self.attend(qkv[0], qkv[1], qkv[2])
    return jnp.einsum("bshk,hkd->bsd", out, self.w_out[...])


def check_hooks(score_mod: Callable | None, mask_mod: Callable | None, size: int = 8) -> None:
  """Evaluates the hooks abstractly on (size, size) scores; ValueError unless score_mod gives floats and mask_mod
  bools broadcastable to (Q, K)."""
  score = jax.ShapeDtypeStruct((size, size), jnp.float32)
  q_idx, kv_idx = jax.ShapeDtypeStruct((size, 1), jnp.int32), jax.ShapeDtypeStruct((1, size), jnp.int32)
  head = jax.ShapeDtypeStruct((), jnp.int32)
  for name, fn, args, kind in (("score_mod", score_mod, (score, q_idx, kv_idx, head), jnp.floating),
                               ("mask_mod", mask_mod, (q_idx, kv_idx, head), jnp.bool_)):
    if fn is None:
      continue
    out = jax.eval_shape(fn, *args)
    if (not isinstance(out, jax.ShapeDtypeStruct) or not jnp.issubdtype(out.dtype, kind)
        or jnp.broadcast_shapes(out.shape, (size, size)) != (size, size)):
      raise ValueError(f"{name} must return a {'float' if kind is jnp.floating else 'bool'} array broadcastable "
                       f"to (Q, K) = {(size, size)}; with q_idx (Q, 1), kv_idx (1, K) it gave {out}")


class MLP(nnx.Module):
  """GELU MLP d -> hidden -> d."""

  def __init__(self, d_model: int, hidden: int, *, rngs: nnx.Rngs, out_std: float):
    self.w_in = _normal(rngs, (d_model, hidden), d_model ** -0.5)
    self.b_in = nnx.Param(jnp.zeros((hidden,), jnp.float32))
    self.w_out = _normal(rngs, (hidden, d_model), out_std)

  def __call__(self, x: jax.Array) -> jax.Array:
    hidden = jax.nn.gelu(jnp.einsum("bsd,df->bsf", x, self.w_in[...]) + self.b_in[...][None, None, :])
    return jnp.einsum("bsf,fd->bsd", hidden, self.w_out[...])


class Block(nnx.Module):
  """x + mixer(RMSNorm(x), mask); x + MLP(RMSNorm(x))."""

  def __init__(self, mixer: nnx.Module, d_model: int, ffn_dim: int, *, rngs: nnx.Rngs, out_std: float):
    self.mixer_norm = RMSNorm(d_model, axis_name=None)
    self.mixer = mixer
    self.mlp_norm = RMSNorm(d_model, axis_name=None)
    self.mlp = MLP(d_model, ffn_dim, rngs=rngs, out_std=out_std)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    x = x + self.mixer(self.mixer_norm(x), mask)
    return x + self.mlp(self.mlp_norm(x))


class Backbone(nnx.Module):
  """The classifier around `make_mixer(d_model, num_heads, rngs=...)`; logits (batch, num_classes) float32."""

  def __init__(self, make_mixer: Callable[..., nnx.Module], *, vocab_size: int, seq_len: int, d_model: int,
               num_heads: int, num_layers: int, ffn_mult: int, num_classes: int, dual: bool, rngs: nnx.Rngs):
    self.dual = dual
    self.embed = _normal(rngs, (vocab_size, d_model), 1.0)
    self.positions = nnx.Variable(jnp.asarray(sinusoidal_positions(seq_len, d_model)))
    out_std = d_model ** -0.5 / math.sqrt(2 * num_layers)
    self.blocks = nnx.List([Block(make_mixer(d_model, num_heads, rngs=rngs), d_model, ffn_mult * d_model,
                                  rngs=rngs, out_std=out_std) for _ in range(num_layers)])
    self.final_norm = RMSNorm(d_model, axis_name=None)
    features = 4 * d_model if dual else d_model
    if dual:
      self.w_hidden = _normal(rngs, (features, d_model), features ** -0.5)
      self.b_hidden = nnx.Param(jnp.zeros((d_model,), jnp.float32))
      features = d_model
    self.w_out = _normal(rngs, (features, num_classes), features ** -0.5)
    self.b_out = nnx.Param(jnp.zeros((num_classes,), jnp.float32))

  def encode(self, tokens: jax.Array) -> jax.Array:
    """tokens (batch, seq) int32 -> pooled features (batch, d_model) float32."""
    mask = tokens != PAD
    x = jnp.take(self.embed[...], tokens, axis=0) + self.positions[...][None, : tokens.shape[1], :]
    for block in self.blocks:
      x = block(x, mask)
    x = self.final_norm(x).astype(jnp.float32)
    keep = mask.astype(jnp.float32)[:, :, None]
    return jnp.sum(x * keep, axis=1) / jnp.maximum(jnp.sum(keep, axis=1), 1.0)

  def __call__(self, tokens: jax.Array, other_tokens: jax.Array | None = None) -> jax.Array:
    features = self.encode(tokens)
    if self.dual:
      other = self.encode(other_tokens)
      features = jnp.concatenate([features, other, features * other, features - other], axis=-1)
      features = jax.nn.relu(features @ self.w_hidden[...] + self.b_hidden[...][None, :])
    return features @ self.w_out[...] + self.b_out[...][None, :]
