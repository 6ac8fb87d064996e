"""The XLA path of `flash_attention` (impl="xla", the default on CPU): softmax attention with a hand-written
backward, formulated for XLA:CPU.

Same semantics as `reference.attention_reference` (the oracle it is tested against); what differs is the
formulation, chosen from profiles of the proxy train step on CPU (experiments/bench/RESULTS.md):
- head-major operands with the query heads of a kv head stacked as rows, (batch, kv_heads, groups * q_len,
  head_dim): each kv head is one batched product with no repeated k/v, and dk/dv come out summed over the group;
- q is scaled before the product, a (Q, D) multiply instead of a (Q, K) one;
- `jax.custom_vjp` keeping the unnormalised probabilities p and their row sums l: the backward is
  dv = p^T dO', ds = p * (dO' v^T - rowsum(dO' * o)), dq = ds k, dk = ds^T q with dO' = dO / l;
- every product in a form XLA:CPU gives to its GEMM library: p^T dO' and ds^T q are computed as (dO'^T p)^T and
  (q^T ds)^T from materialised (D, Q) transposes, which `optimization_barrier` keeps XLA from folding back
  into a product contracting the rows of both operands (that form runs on a slower path);
- on CPU the batch is cut into a few independent slices (`batch_slices`): XLA:CPU runs each batched product on
  one core, and independent slices let its thunk executor run them on different cores at once (the results are
  the same: no sum crosses batch elements).
Like the Pallas path, it is reverse-mode differentiable only (`jax.jvp` through it is not supported).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import os

import jax
import jax.numpy as jnp

from pallas_kernels.attention import _common

_HIGHEST = jax.lax.Precision.HIGHEST
# Most slices "auto" cuts (one per core up to this): more than 4 made the proxy64 step slower again on 2 cores
# (experiments/bench/RESULTS.md, "the attention core rewritten for XLA:CPU", batch slices).
MAX_AUTO_SLICES = 4


def xla_attention(q, k, v, *, causal=True, sliding_window=None, softcap=None, scale=None, score_mod=None,
                  mask_mod=None, batch_slices=None):
  """Softmax attention; arguments, result and masking conventions as `attention_reference`.

  batch_slices: compute the batch as this many independent slices (1 <= n <= batch). Default: on CPU the
    number of cores, at most `MAX_AUTO_SLICES` and the batch size; elsewhere 1.
  """
  _common.check_inputs(q, k, v)
  spec = _common.make_spec(q, causal=causal, sliding_window=sliding_window, softcap=softcap, scale=scale,
                           score_mod=score_mod, mask_mod=mask_mod)
  batch = q.shape[0]
  if batch_slices is None:
    batch_slices = max(1, min(_cpu_cores(), MAX_AUTO_SLICES, batch)) if jax.default_backend() == "cpu" else 1
  try:
    slices = operator.index(batch_slices)
  except TypeError:
    slices = 0
  if not 1 <= slices <= batch:
    raise ValueError(f"batch_slices must be an int in [1, batch={batch}]; got {batch_slices!r}")
  bounds = [round(i * batch / slices) for i in range(slices + 1)]
  outs = [_attention(q[a:b], k[a:b], v[a:b], spec) for a, b in zip(bounds[:-1], bounds[1:])]
  return outs[0] if len(outs) == 1 else jnp.concatenate(outs)


def _cpu_cores() -> int:
  """Cores this process may run on (its affinity mask where the OS has one)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.partial(jax.jit, static_argnames=("spec",))
def _attention(q, k, v, spec: _common.AttentionSpec):
  batch, q_len, heads, head_dim = q.shape
  kv_heads = k.shape[2]
  groups = heads // kv_heads
  rows = (q.astype(jnp.float32) * spec.scale).reshape(batch, q_len, kv_heads, groups, head_dim)
  rows = rows.transpose(0, 2, 3, 1, 4).reshape(batch, kv_heads, groups * q_len, head_dim)
  kh, vh = (x.astype(jnp.float32).transpose(0, 2, 1, 3) for x in (k, v))
  out = _core(rows, kh, vh, dataclasses.replace(spec, scale=1.0), groups)  # the scale is in the rows
  out = out.reshape(batch, kv_heads, groups, q_len, head_dim).transpose(0, 3, 1, 2, 4)
  return out.reshape(batch, q_len, heads, head_dim).astype(q.dtype)


def _logits(s, spec: _common.AttentionSpec, groups: int):
  """Scaled products s (B, KH, G * Q, K) -> (logits, -inf where masked; d logits / d s, or None if 1)."""
  batch, kv_heads, rows, kv_len = s.shape
  q_len = rows // groups
  q_pos = jnp.arange(q_len, dtype=jnp.int32) + (kv_len - q_len)
  kv_idx = jnp.arange(kv_len, dtype=jnp.int32)[None, :]
  if spec.score_mod is None and spec.mask_mod is None:  # no hook needs the head: one elementwise pass
    q_idx = jnp.tile(q_pos, groups)[:, None]
    logits, dlogits = _common.transform_scores_and_grad(s, q_idx, kv_idx, None, spec)
    keep = _common.keep_mask(q_idx, kv_idx, None, spec)
  else:  # hooks see one (batch, head) pair at a time, as in the reference and the kernels

    def one_head(s_, head):
      logits_, dlogits_ = _common.transform_scores_and_grad(s_, q_pos[:, None], kv_idx, head, spec)
      keep_ = _common.keep_mask(q_pos[:, None], kv_idx, head, spec)
      return logits_, dlogits_, None if keep_ is None else jnp.broadcast_to(keep_, s_.shape)

    fn = jax.vmap(jax.vmap(jax.vmap(one_head)), in_axes=(0, None))  # groups, kv heads, batch
    head_ids = jnp.arange(kv_heads * groups, dtype=jnp.int32).reshape(kv_heads, groups)
    per_head = fn(s.reshape(batch, kv_heads, groups, q_len, kv_len), head_ids)
    logits, dlogits, keep = (None if x is None else x.reshape(s.shape) for x in per_head)
  if keep is not None:
    logits = jnp.where(keep, logits, -jnp.inf)
  return logits, dlogits


def _forward(rows, k, v, spec, groups):
  s = jnp.einsum("bnrd,bnkd->bnrk", rows, k, precision=_HIGHEST)
  logits, dlogits = _logits(s, spec, groups)
  m = jnp.max(logits, axis=-1, keepdims=True)
  p = jnp.exp(logits - jnp.where(jnp.isfinite(m), m, 0.0))  # masked: exp(-inf) = 0
  l = jnp.sum(p, axis=-1, keepdims=True)
  l = jnp.where(l == 0.0, 1.0, l)  # a row with every key masked gives zeros
  out = jnp.einsum("bnrk,bnkd->bnrd", p, v, precision=_HIGHEST) / l
  return out, (p, l, dlogits)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _core(rows, k, v, spec, groups):
  return _forward(rows, k, v, spec, groups)[0]


def _core_fwd(rows, k, v, spec, groups):
  out, (p, l, dlogits) = _forward(rows, k, v, spec, groups)
  return out, (rows, k, v, out, p, l, dlogits)


def _materialised_transpose(x):
  """x with its last two axes swapped, as an array of its own (XLA may not fold it into the next product)."""
  return jax.lax.optimization_barrier(jnp.swapaxes(x, -1, -2))


def _core_bwd(spec, groups, residuals, dout):
  rows, k, v, out, p, l, dlogits = residuals
  dout = dout / l  # the cotangent of the unnormalised p v
  dv = jnp.einsum("bndr,bnrk->bndk", _materialised_transpose(dout), p, precision=_HIGHEST)
  dp = jnp.einsum("bnrd,bnkd->bnrk", dout, v, precision=_HIGHEST)
  ds = p * (dp - jnp.sum(dout * out, axis=-1, keepdims=True))
  if dlogits is not None:
    ds = jnp.where(p == 0.0, 0.0, ds * dlogits)  # masked (p = 0): no gradient, whatever the hook's slope
  drows = jnp.einsum("bnrk,bnkd->bnrd", ds, k, precision=_HIGHEST)
  dk = jnp.einsum("bndr,bnrk->bndk", _materialised_transpose(rows), ds, precision=_HIGHEST)
  return drows, jnp.swapaxes(dk, -1, -2), jnp.swapaxes(dv, -1, -2)


_core.defvjp(_core_fwd, _core_bwd)
