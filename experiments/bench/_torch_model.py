"""PyTorch twin of `aira_jax.models.LanguageModel` for layouts of "A" and "M", used by `train_step.py`.

Same architecture and parameter shapes (up to the layout of the projection matrices): token embedding; per
layer x + Attention(RMSNorm(x)) (RoPE rotate-half, causal `scaled_dot_product_attention`, grouped KV heads
with head i on KV head i // group) or x + SwiGLU(RMSNorm(x)); final RMSNorm; head = embedding transposed.
No biases. Init Normal(0, init_std), output projections Normal(0, init_std / sqrt(2 * depth)), norms ones.

Imports torch: only the benchmark imports this module (torch is not a dependency of aira_jax).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _normal(shape, std):
  return nn.Parameter(torch.randn(*shape) * std)


class RMSNorm(nn.Module):

  def __init__(self, dim, eps):
    super().__init__()
    self.eps = eps
    self.scale = nn.Parameter(torch.ones(dim))

  def forward(self, x):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.scale


def _rope(x, cos, sin):
  """x (b, heads, s, hd); cos, sin (s, hd // 2)."""
  half = x.shape[-1] // 2
  x1, x2 = x[..., :half], x[..., half:]
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):

  def __init__(self, config, depth):
    super().__init__()
    d, self.h, self.kv, self.hd = (config.d_model, config.num_heads, config.resolved_kv_heads,
                                   config.resolved_head_dim)
    std = config.init_std
    self.norm = RMSNorm(d, config.norm_eps)
    self.wq = _normal((self.h * self.hd, d), std)
    self.wk = _normal((self.kv * self.hd, d), std)
    self.wv = _normal((self.kv * self.hd, d), std)
    self.wo = _normal((d, self.h * self.hd), std / math.sqrt(2 * depth))

  def forward(self, x, cos, sin):
    b, s, _ = x.shape
    h = self.norm(x)
    q = F.linear(h, self.wq).view(b, s, self.h, self.hd).transpose(1, 2)
    k = F.linear(h, self.wk).view(b, s, self.kv, self.hd).transpose(1, 2)
    v = F.linear(h, self.wv).view(b, s, self.kv, self.hd).transpose(1, 2)
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.h)
    return x + F.linear(out.transpose(1, 2).reshape(b, s, self.h * self.hd), self.wo)


class SwiGLU(nn.Module):

  def __init__(self, config, depth):
    super().__init__()
    d, f, std = config.d_model, config.ffn_dim, config.init_std
    self.norm = RMSNorm(d, config.norm_eps)
    self.w_gate = _normal((f, d), std)
    self.w_up = _normal((f, d), std)
    self.w_down = _normal((d, f), std / math.sqrt(2 * depth))

  def forward(self, x, cos, sin):
    h = self.norm(x)
    return x + F.linear(F.silu(F.linear(h, self.w_gate)) * F.linear(h, self.w_up), self.w_down)


class TorchLM(nn.Module):
  """layout: a string of "A" / "M"; config: an `aira_jax.models.ModelConfig` (swiglu, tied, no softcaps)."""

  def __init__(self, layout: str, config, max_seq: int):
    super().__init__()
    assert set(layout) <= {"A", "M"} and config.tie_embeddings and config.mlp_activation == "swiglu"
    assert not config.qk_norm and config.logit_softcap is None and config.attention_softcap is None
    self.embed = _normal((config.vocab_size, config.d_model), config.init_std)
    self.layers = nn.ModuleList([(Attention if s == "A" else SwiGLU)(config, len(layout)) for s in layout])
    self.final_norm = RMSNorm(config.d_model, config.norm_eps)
    hd = config.resolved_head_dim
    inv_freq = config.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    angles = torch.arange(max_seq, dtype=torch.float32)[:, None] * inv_freq[None, :]
    self.register_buffer("cos", angles.cos(), persistent=False)
    self.register_buffer("sin", angles.sin(), persistent=False)

  def forward(self, tokens):
    s = tokens.shape[1]
    cos, sin = self.cos[:s], self.sin[:s]
    x = F.embedding(tokens, self.embed)
    for layer in self.layers:
      x = layer(x, cos, sin)
    return F.linear(self.final_norm(x), self.embed)


def loss_fn(model, inputs, targets):
  logits = model(inputs)
  return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def make_adamw(model, lr, weight_decay, betas, eps):
  """AdamW with decay on parameters of two or more dimensions (as aira_jax's weight_decay_mask)."""
  decay = [p for p in model.parameters() if p.ndim >= 2]
  other = [p for p in model.parameters() if p.ndim < 2]
  groups = [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]
  return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
