"""Attention test material shared by the reference, XLA-path and Pallas-kernel tests (importable because
setup.cfg puts tests/ on pythonpath): random inputs, a float64 numpy oracle, score/mask hooks, and the
value-and-gradient comparison against `attention_reference`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels.attention import attention_reference


def attention_inputs(seed, batch, q_len, kv_len, heads, kv_heads, dim, dtype=jnp.float32):
  """Random q (B, Q, H, D), k, v (B, K, KH, D) and an output cotangent (numpy RNG: no compile per shape)."""
  rng = np.random.default_rng(seed)
  shapes = [(batch, q_len, heads, dim), (batch, kv_len, kv_heads, dim), (batch, kv_len, kv_heads, dim),
            (batch, q_len, heads, dim)]
  return tuple(jnp.asarray(rng.standard_normal(s, np.float32), dtype) for s in shapes)


def numpy_attention(q, k, v, *, causal, window=None, softcap=None, scale=None):
  """Float64 attention with explicit loops over batch and heads; q/k/v as numpy arrays (B, S, H, D)."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  batch, q_len, heads, dim = q.shape
  kv_len, kv_heads = k.shape[1], k.shape[2]
  scale = dim ** -0.5 if scale is None else scale
  out = np.zeros_like(q)
  for b in range(batch):
    for h in range(heads):
      kh = h // (heads // kv_heads)
      s = scale * q[b, :, h] @ k[b, :, kh].T
      if softcap is not None:
        s = softcap * np.tanh(s / softcap)
      qpos = np.arange(q_len)[:, None] + kv_len - q_len
      kpos = np.arange(kv_len)[None, :]
      keep = np.ones_like(s, dtype=bool)
      if causal:
        keep &= kpos <= qpos
      if window is not None:
        keep &= qpos - kpos < window
      for i in range(q_len):
        if not keep[i].any():
          continue
        w = np.exp(s[i][keep[i]] - s[i][keep[i]].max())
        out[b, i, h] = (w / w.sum()) @ v[b, :, kh][keep[i]]
  return out


@functools.partial(jax.jit, static_argnums=(0,))
def attention_value_and_grads(fn, q, k, v, cotangent):
  out, vjp = jax.vjp(fn, q, k, v)
  return (out, *vjp(cotangent.astype(out.dtype)))


def assert_matches_reference(fn, q, k, v, cotangent, *, rtol, atol, **options):
  """Asserts fn(q, k, v, **options) and its dq, dk, dv equal `attention_reference`'s (shape, dtype, values,
  all finite); returns fn's output."""
  got = attention_value_and_grads(functools.partial(fn, **options), q, k, v, cotangent)
  want = attention_value_and_grads(functools.partial(attention_reference, **options), q, k, v, cotangent)
  for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
    assert g.shape == w.shape and g.dtype == w.dtype, name
    g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
    assert np.isfinite(g).all(), name
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
  return got[0]


def alibi(s, q_idx, kv_idx, head, num_heads=4):
  slope = jnp.exp2(-8.0 * (head + 1).astype(jnp.float32) / num_heads)
  return s - slope * (q_idx - kv_idx).astype(jnp.float32)


def relative_bias(s, q_idx, kv_idx, head):
  return s + 0.5 * jnp.tanh((q_idx - kv_idx).astype(jnp.float32) / 4.0) * (head % 2 * 2 - 1).astype(jnp.float32)


def tanh_cap(s, q_idx, kv_idx, head):
  return 3.0 * jnp.tanh(s / 3.0)


def document_mask(q_idx, kv_idx, head):
  return (q_idx // 7) == (kv_idx // 7)


def prefix_lm_mask(q_idx, kv_idx, head):
  return (kv_idx < 5) | (kv_idx <= q_idx)


# Shared parametrizations: name -> options (hooks) / (q_len, kv_len, heads, kv_heads, options) (shapes).
HOOK_CASES = {
    "alibi": dict(score_mod=alibi),
    "relbias-softcap": dict(score_mod=relative_bias, softcap=5.0),
    "tanh": dict(score_mod=tanh_cap, causal=False),
    "document": dict(mask_mod=document_mask),
    "prefix-lm": dict(mask_mod=prefix_lm_mask, causal=False),
    "doc-alibi-window": dict(mask_mod=document_mask, score_mod=alibi, causal=False, sliding_window=6),
}
SHAPE_CASES = {
    "causal": (37, 37, 2, 2, dict(causal=True)),
    "gqa2": (37, 37, 4, 2, dict(causal=False)),
    "decode-gqa4": (20, 37, 4, 1, dict(causal=True)),  # decoding-style q_len < kv_len, GQA ratio 4
    "window": (37, 37, 4, 2, dict(causal=True, sliding_window=5)),
    "window-noncausal": (21, 37, 2, 1, dict(causal=False, sliding_window=9, scale=0.2)),
    "softcap": (37, 37, 2, 1, dict(causal=False, softcap=2.0)),
}
