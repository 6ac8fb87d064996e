# seed: baseline
"""Baseline `train.py` for the autoresearch design task: a small GPT trained for a fixed wall-clock budget.

Contract (the harness imports this file and calls `train`; a fresh process later calls `predict`):
  train(data, budget_seconds) -> state (saved with pickle, JAX arrays as numpy), and
  predict(state, tokens) -> logits
  - data.train_tokens / data.train_targets: (rows, seq_len) int32 numpy arrays (read-only); a target equal to
    data.ignore_id (-100) is padding and must not be trained on. Every row starts with data.bos_id.
  - data.vocab_size, data.seq_len, data.bos_id, data.token_bytes (UTF-8 bytes per token id, 0 for BOS).
  - data.start_clock(): call it once, right after the first (compiling) step finishes; the budget counts from
    there. data.elapsed() / data.remaining() read the clock (before start_clock they count from the call).
  - data.report(steps=..., tokens=..., train_loss=...): optional numbers shown with the score.
  - predict(state, tokens (B, L) int32) -> logits (B, L, vocab_size) float32. It must be causal: logits at
    position t may depend only on tokens[:, :t + 1]. The trusted side checks this and scores val_bpb on
    held-out text.

Model (after autoresearch's baseline): pre-norm transformer with RoPE, QK-norm, ReLU^2 MLP, value embeddings
on alternating layers (gated, added to the attention values), untied embedding / output head and logits
soft-capped at 15. Optimiser: Muon on the block matrices, AdamW on embeddings, head and gates. The learning
rate follows a warmup / constant / warmdown schedule over the fraction of the time budget spent.
Everything is plain JAX + optax with parameters in a dict; change anything.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

# Sizes: autoresearch's baseline model on an accelerator, a tiny model on CPU.
ON_ACCELERATOR = jax.default_backend() != "cpu"
DEPTH = 8 if ON_ACCELERATOR else 2
WIDTH = 512 if ON_ACCELERATOR else 64
HEADS = 4 if ON_ACCELERATOR else 2
MLP_RATIO = 4  # knob: 2, 3, 4
BATCH_ROWS = 32 if ON_ACCELERATOR else 16
COMPUTE_DTYPE = jnp.bfloat16 if ON_ACCELERATOR else jnp.float32
SOFTCAP = 15.0  # knob: 10.0, 15.0, 30.0
ROPE_BASE = 10000.0
GATE_CHANNELS = 32  # The value-embedding gate reads the first channels of the block input.

# Optimiser.
# Learning rates: Muon for the block matrices, AdamW for embeddings, head and gates.
MATRIX_LR = 0.02  # knob: 0.01, 0.02, 0.04
EMBED_LR = 0.3  # knob: 0.1, 0.3, 0.6
HEAD_LR = 0.004 * (WIDTH / 768) ** -0.5  # AdamW, output head.
GATE_LR = 0.02  # AdamW, value-embedding gates.
ADAM_BETAS = (0.8, 0.95)
WEIGHT_DECAY = 0.0  # knob: 0.0, 0.01, 0.1
WARMUP_FRACTION = 0.02
WARMDOWN_FRACTION = 0.5  # knob: 0.3, 0.5, 0.7
FINAL_LR_FRACTION = 0.0
SEED = 0
LOG_EVERY_FRACTION = 0.1


def has_value_embedding(layer):
  """Value embeddings on alternating layers, always including the last."""
  return layer % 2 == (DEPTH - 1) % 2


def init_params(key, vocab_size):
  """Parameters as a dict of float32 arrays; output projections start at zero."""
  keys = iter(jax.random.split(key, 8 * DEPTH + 2))
  bound = math.sqrt(3.0 / WIDTH)

  def uniform(shape):
    return jax.random.uniform(next(keys), shape, jnp.float32, -bound, bound)

  blocks = []
  for layer in range(DEPTH):
    block = {"wq": uniform((WIDTH, WIDTH)), "wk": uniform((WIDTH, WIDTH)), "wv": uniform((WIDTH, WIDTH)),
             "wo": jnp.zeros((WIDTH, WIDTH)), "w_fc": uniform((WIDTH, MLP_RATIO * WIDTH)),
             "w_proj": jnp.zeros((MLP_RATIO * WIDTH, WIDTH))}
    if has_value_embedding(layer):
      block["value_embed"] = uniform((vocab_size, WIDTH))
      block["ve_gate"] = jnp.zeros((min(GATE_CHANNELS, WIDTH), HEADS))
    blocks.append(block)
  return {"embed": jax.random.normal(next(keys), (vocab_size, WIDTH), jnp.float32),
          "head": 0.001 * jax.random.normal(next(keys), (WIDTH, vocab_size), jnp.float32),
          "blocks": blocks}


def rms_norm(x):
  """RMS norm over the last axis, without a learned scale."""
  x32 = x.astype(jnp.float32)
  return (x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + 1e-6)).astype(x.dtype)


def rope(x):
  """Rotary position embedding of x (batch, length, heads, head_dim), rotating the two halves."""
  length, head_dim = x.shape[1], x.shape[3]
  inv_freq = ROPE_BASE ** (-jnp.arange(0, head_dim // 2, dtype=jnp.float32) / (head_dim // 2))
  angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  cos = jnp.cos(angles)[None, :, None, :].astype(x.dtype)
  sin = jnp.sin(angles)[None, :, None, :].astype(x.dtype)
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([x1 * cos + x2 * sin, x2 * cos - x1 * sin], axis=-1)


def attention(block, x, tokens):
  """Causal self-attention with QK-norm and (on some layers) gated value embeddings."""
  batch, length, _ = x.shape
  head_dim = WIDTH // HEADS

  def project(name):
    return (x @ block[name].astype(x.dtype)).reshape(batch, length, HEADS, head_dim)

  q, k, v = project("wq"), project("wk"), project("wv")
  if "value_embed" in block:
    ve = block["value_embed"].astype(x.dtype)[tokens].reshape(batch, length, HEADS, head_dim)
    gate = 2.0 * jax.nn.sigmoid(x[..., :block["ve_gate"].shape[0]] @ block["ve_gate"].astype(x.dtype))
    v = v + gate[..., None] * ve
  q, k = rms_norm(rope(q)), rms_norm(rope(k))
  out = jax.nn.dot_product_attention(q, k, v, is_causal=True)
  return out.reshape(batch, length, WIDTH) @ block["wo"].astype(x.dtype)


def mlp(block, x):
  """ReLU^2 feed-forward."""
  hidden = jnp.square(jax.nn.relu(x @ block["w_fc"].astype(x.dtype)))
  return hidden @ block["w_proj"].astype(x.dtype)


def forward(params, tokens):
  """Logits (batch, length, vocab) in float32, soft-capped at SOFTCAP."""
  x = rms_norm(params["embed"][tokens]).astype(COMPUTE_DTYPE)
  for block in params["blocks"]:
    x = x + attention(block, rms_norm(x), tokens)
    x = x + mlp(block, rms_norm(x))
  logits = (rms_norm(x) @ params["head"].astype(COMPUTE_DTYPE)).astype(jnp.float32)
  return SOFTCAP * jnp.tanh(logits / SOFTCAP)


def loss_fn(params, tokens, targets, ignore_id):
  """Mean next-token cross-entropy (nats) over the targets that are not padding."""
  logits = forward(params, tokens)
  keep = targets != ignore_id
  safe = jnp.where(keep, targets, 0)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), safe[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(keep, nll, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def param_group(path, _):
  """Which optimiser a parameter belongs to, from its name."""
  name = path[-1].key
  if name in ("wq", "wk", "wv", "wo", "w_fc", "w_proj"):
    return "muon"
  if name in ("embed", "value_embed"):
    return "embed"
  return "head" if name == "head" else "gate"


def make_optimizer(params):
  """Muon for block matrices, AdamW for the rest; the schedule multiplies the updates in `train_step`."""
  def adamw(lr):
    return optax.adamw(lr, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=1e-10, weight_decay=0.0)

  def matrix_dims(updates):  # Each block weight is an (input, output) matrix; other groups' leaves are masked.
    masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
    return jax.tree.map(lambda x: x if masked(x) else MuonDimensionNumbers(0, 1), updates, is_leaf=masked)

  muon = optax.chain(scale_by_muon(beta=0.95, weight_dimension_numbers=matrix_dims),
                     optax.add_decayed_weights(WEIGHT_DECAY), optax.scale(-MATRIX_LR))
  groups = {"muon": muon, "embed": adamw(EMBED_LR), "head": adamw(HEAD_LR), "gate": adamw(GATE_LR)}
  return optax.multi_transform(groups, jax.tree_util.tree_map_with_path(param_group, params))


def lr_multiplier(progress):
  """Learning-rate factor at `progress` = fraction of the time budget spent (0..1)."""
  if progress < WARMUP_FRACTION:
    return (progress + 1e-3) / WARMUP_FRACTION
  if progress < 1.0 - WARMDOWN_FRACTION:
    return 1.0
  remaining = max(1.0 - progress, 0.0) / WARMDOWN_FRACTION
  return remaining + (1.0 - remaining) * FINAL_LR_FRACTION


def train(data, budget_seconds):
  """Trains until `budget_seconds` of wall clock have passed since the first step; returns the parameters."""
  params = init_params(jax.random.key(SEED), data.vocab_size)
  optimizer = make_optimizer(params)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, tokens, targets, lr_scale):
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens, targets, data.ignore_id)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u: lr_scale * u, updates)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(SEED)
  rows = data.train_tokens.shape[0]
  step, next_log, loss = 0, 0.0, jnp.float32(0.0)
  while True:
    progress = data.elapsed() / budget_seconds if step > 0 else 0.0
    if progress >= 1.0:
      break
    batch = rng.integers(0, rows, BATCH_ROWS)
    params, opt_state, loss = train_step(params, opt_state, data.train_tokens[batch], data.train_targets[batch],
                                         jnp.float32(lr_multiplier(progress)))
    loss.block_until_ready()  # So the clock sees each step finish.
    if step == 0:
      data.start_clock()  # Compilation is done: the budget starts now.
    step += 1
    if progress >= next_log:
      print(f"step {step:6d}  progress {progress:5.1%}  loss {float(loss):.4f}", flush=True)
      next_log += LOG_EVERY_FRACTION
  data.report(steps=step, tokens=step * BATCH_ROWS * data.seq_len, train_loss=float(loss))
  print(f"done: {step} steps in {data.elapsed():.1f} s, final loss {float(loss):.4f}", flush=True)

  return params


_FORWARD = jax.jit(forward)


def predict(state, tokens):
  """Logits (batch, seq_len, vocab) float32 of `tokens` with the parameters `train` returned (reloaded)."""
  return _FORWARD(state, jnp.asarray(tokens, jnp.int32))

