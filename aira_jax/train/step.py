"""The language-model loss, the pure train and eval steps, and the one place that jits them.

`train_step` is a plain function of (params, opt_state, batch, model_inputs, lr_scale): it merges the NNX graph
with the parameters, calls the model on `batch["inputs"]` and the `model_inputs` keywords (e.g. the switch
model's layer kinds: an input, so one program serves every layout), takes gradients of the token-level
cross-entropy (plus optional z-loss), accumulates them over micro-batches with `lax.scan`, sets the optimizer's
traced `lr_scale` hyperparameter (the schedule, evaluated by the loop on the host) and applies the optax
update. `eval_step` returns a task's metrics of the logits. `jit_train_step` and `jit_eval_step` are the
project's jit sites for training: parameters and optimizer state keep the shardings the logical-axis rules
give them, the batch is split over ("data", "fsdp"), model inputs, the learning-rate scale and metrics are
replicated, and the train step donates the old parameters and optimizer state.

Gradient accumulation weights micro-batches by their counted tokens (targets != IGNORE): each micro-batch
contributes the *sum* of its per-token losses and gradients, and the total is divided once by the tokens
counted over the whole batch. The result equals one step on the whole batch exactly (up to float summation
order), whether or not the micro-batches count the same number of tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from aira_jax.tasks.base import IGNORE
from aira_jax.train.mesh import batch_sharding, param_shardings, replicated, tree_shardings
from aira_jax.train.optimizers import set_lr_scale

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
ModelInputs = dict[str, jax.Array]
"""Keyword inputs of the model besides the tokens (replicated), e.g. {"kinds": (depth,) int32} for the switch
model; {} for a `LanguageModel`."""


def lm_loss_sums(logits: jax.Array, targets: jax.Array, z_loss: float = 0.0) -> dict[str, jax.Array]:
  """Sums over counted positions (targets != IGNORE) of the per-token terms.

  Args:
    logits: (..., vocab) float, computed in float32 here.
    targets: (...) int32 next-token ids, IGNORE (-100) where a position does not count.
    z_loss: weight of logsumexp(logits)^2 (PaLM's z-loss, keeps the softmax normaliser near 1).
  Returns:
    float32 scalars "ce", "z_loss" (already times the weight), "correct" and "tokens".
  """
  logits = logits.astype(jnp.float32)
  counted = targets != IGNORE
  safe_targets = jnp.where(counted, targets, 0)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, safe_targets[..., None], axis=-1)[..., 0]
  weight = counted.astype(jnp.float32)
  correct = (jnp.argmax(logits, axis=-1) == targets) & counted
  return {
      "ce": jnp.sum((log_z - target_logit) * weight),
      "z_loss": z_loss * jnp.sum(jnp.square(log_z) * weight),
      "correct": jnp.sum(correct.astype(jnp.float32)),
      "tokens": jnp.sum(weight),
  }


def metrics_from_sums(sums: dict[str, jax.Array]) -> Metrics:
  """Means over counted tokens: "loss" (= ce + z_loss), "ce", "z_loss", "accuracy"; and "tokens" (the count).
  A batch with no counted token gives zeros rather than NaN."""
  denominator = jnp.maximum(sums["tokens"], 1.0)
  ce = sums["ce"] / denominator
  z = sums["z_loss"] / denominator
  return {"loss": ce + z, "ce": ce, "z_loss": z, "accuracy": sums["correct"] / denominator,
          "tokens": sums["tokens"]}


def lm_loss(logits: jax.Array, targets: jax.Array, z_loss: float = 0.0) -> tuple[jax.Array, Metrics]:
  """Mean next-token cross-entropy over targets != -100, plus z_loss * mean(logsumexp(logits)^2) over the same
  positions.

  Args:
    logits: (batch, seq, vocab) float.
    targets: (batch, seq) int32 with IGNORE = -100 on positions that do not count.
  Returns:
    (loss, metrics): loss a float32 scalar; metrics "loss", "ce", "z_loss", "accuracy", "tokens".
  """
  metrics = metrics_from_sums(lm_loss_sums(logits, targets, z_loss))
  return metrics["loss"], metrics


def lm_metrics(logits: jax.Array, targets: jax.Array) -> Metrics:
  """`lm_loss`'s metrics alone (the default metrics of `eval_step`)."""
  return lm_loss(logits, targets)[1]


def _cast_floats(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def lm_forward(model: nnx.Module, batch: Batch, model_inputs: ModelInputs) -> jax.Array:
  """The default forward: `model(batch["inputs"], **model_inputs)` -> logits."""
  return model(batch["inputs"], **model_inputs)


def split_params(state: nnx.State) -> tuple[nnx.State, nnx.State]:
  """(parameters, the rest) of a model's state: gradients and the optimizer see the `nnx.Param`s; the rest
  (e.g. dropout RNG counters, a candidate's own counters) is threaded through the step as the model leaves it.
  A language model's rest is empty."""
  return nnx.split_state(state, nnx.Param, ...)


def _summed_loss(params: nnx.State, rest: nnx.State, batch: Batch, model_inputs: ModelInputs, graphdef: nnx.GraphDef,
                 z_loss: float, compute_dtype, forward: Callable):
  """(sum of per-token losses, (sums, the rest as the model left it)) for one micro-batch; the gradient of the
  first is what accumulates."""
  if compute_dtype is not None:
    params = _cast_floats(params, jnp.dtype(compute_dtype))
  rest = jax.tree.map(lambda v: v, rest)  # fresh Variables at this trace level, so the forward may update them
  model = nnx.merge(graphdef, params, rest)
  sums = lm_loss_sums(forward(model, batch, model_inputs), batch["targets"], z_loss)
  return sums["ce"] + sums["z_loss"], (sums, nnx.state(model, nnx.Not(nnx.Param)))


def _split_micro_batches(batch: Batch, steps: int) -> Batch:
  """(B, ...) -> (steps, B // steps, ...). Micro-batch i takes rows i, i + steps, i + 2 * steps, ..., so
  with the batch axis sharded over devices every micro-batch still spans all of them."""
  def split(x):
    if x.shape[0] % steps:
      raise ValueError(f"a batch of {x.shape[0]} rows cannot be split into {steps} equal parts: "
                       "grad_accum_steps x parallel_branches must divide the batch size")
    x = x.reshape((x.shape[0] // steps, steps) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)

  return jax.tree.map(split, batch)


def loss_and_grads(params: nnx.State, batch: Batch, model_inputs: ModelInputs | None = None, *,
                   graphdef: nnx.GraphDef, grad_accum_steps: int = 1, parallel_branches: int = 1, z_loss: float = 0.0,
                   compute_dtype=None, forward: Callable = lm_forward
                   ) -> tuple[Metrics, nnx.State, nnx.State]:
  """Metrics, the gradient of the mean loss over all counted tokens of `batch` (token-weighted accumulation over
  `grad_accum_steps` micro-batches, one after another, each computed as `parallel_branches` independent slices
  whose gradients are summed), and the model's new non-parameter state. `params` is the model's whole state;
  the gradient has the structure and dtypes of its `nnx.Param` part (`split_params`). The rest is threaded
  through the micro-batches in order (of parallel branches, the first one's is kept).

  Branches are for CPU: XLA:CPU runs most ops of a program on one thread and overlaps only independent ops,
  so two independent halves of a batch keep two cores busier (`experiments/bench/train_step.py --branches 2`;
  RESULTS.md).
  """
  if grad_accum_steps < 1 or parallel_branches < 1:
    raise ValueError(f"grad_accum_steps ({grad_accum_steps}) and parallel_branches ({parallel_branches}) must be "
                     ">= 1")
  summed_grad = jax.grad(_summed_loss, has_aux=True)
  model_inputs = {} if model_inputs is None else model_inputs
  params, rest = split_params(params)
  kwargs = dict(graphdef=graphdef, z_loss=z_loss, compute_dtype=compute_dtype, forward=forward)

  def grad_fn(rest, micro_batch):
    if parallel_branches == 1:
      return summed_grad(params, rest, micro_batch, model_inputs, **kwargs)
    slices = _split_micro_batches(micro_batch, parallel_branches)
    branches = [summed_grad(params, rest, jax.tree.map(lambda x: x[i], slices), model_inputs, **kwargs)
                for i in range(parallel_branches)]
    grads, sums = jax.tree.map(lambda *parts: functools.reduce(jnp.add, parts),
                               *[(g, s) for g, (s, _) in branches])
    return grads, (sums, branches[0][1][1])

  if grad_accum_steps == 1:
    grad_sum, (sums, rest) = grad_fn(rest, batch)
  else:
    def accumulate(carry, micro_batch):
      grad_total, sum_total, rest = carry
      grads, (sums, rest) = grad_fn(rest, micro_batch)
      return (jax.tree.map(jnp.add, grad_total, grads), jax.tree.map(jnp.add, sum_total, sums), rest), None

    zero_sums = {k: jnp.zeros((), jnp.float32) for k in ("ce", "z_loss", "correct", "tokens")}
    zeros = (jax.tree.map(jnp.zeros_like, params), zero_sums, rest)
    (grad_sum, sums, rest), _ = jax.lax.scan(accumulate, zeros, _split_micro_batches(batch, grad_accum_steps))
  denominator = jnp.maximum(sums["tokens"], 1.0)
  grads = jax.tree.map(lambda g: (g / denominator).astype(g.dtype), grad_sum)
  return metrics_from_sums(sums), grads, rest


def train_step(params: nnx.State, opt_state: optax.OptState, batch: Batch, model_inputs: ModelInputs | None = None,
               lr_scale: jax.Array | float = 1.0, *, graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation,
               grad_accum_steps: int = 1, parallel_branches: int = 1, z_loss: float = 0.0,
               compute_dtype=None, forward: Callable = lm_forward) -> tuple[nnx.State, optax.OptState, Metrics]:
  """One optimizer step on `batch`.

  Args:
    params: the model's state (`nnx.split(model)[1]`): its `nnx.Param`s (float32 in mixed precision) are
      trained; anything else (RNG counters) is carried as the forward pass leaves it.
    opt_state: `optimizer.init(split_params(params)[0])` (for a language model, `optimizer.init(params)`).
    batch: {"inputs": (B, L) int32, "targets": (B, L) int32 with IGNORE = -100}, or whatever `forward` reads
      with targets matching its logits (e.g. a classifier's (B,) labels); B divisible by grad_accum_steps.
    model_inputs: keyword inputs of the model besides the tokens (`ModelInputs`), default none.
    lr_scale: the schedule's factor at this step (`optimizers.lr_multiplier`), set as the optimizer's traced
      `lr_scale` hyperparameter (ignored by an optimizer without one).
    graphdef: the model's static graph (`nnx.split(model)[0]`).
    parallel_branches: compute each micro-batch as this many independent slices (for CPU; see
      `loss_and_grads`); grad_accum_steps x parallel_branches must divide B.
    compute_dtype: when set (e.g. "bfloat16"), parameters are cast to it inside the forward pass; gradients
      and the update stay in the parameters' dtype. The model also casts activations to `ModelConfig.dtype`.
    forward: `forward(model, batch, model_inputs) -> logits` (default `lm_forward`); the loss is the
      cross-entropy of the logits against batch["targets"] (`lm_loss_sums`).
  Returns:
    (new params, new opt_state, metrics): float32 scalars "loss", "ce", "z_loss", "tokens", "grad_norm"
    (global L2 norm of the gradient before the optimizer's clipping). Accuracy is left to `eval_step`: its
    argmax over the vocabulary at every position is a measurable share of a small model's step.
  """
  metrics, grads, rest = loss_and_grads(params, batch, model_inputs, graphdef=graphdef,
                                        grad_accum_steps=grad_accum_steps, parallel_branches=parallel_branches,
                                        z_loss=z_loss, compute_dtype=compute_dtype, forward=forward)
  trained = split_params(params)[0]
  updates, opt_state = optimizer.update(grads, set_lr_scale(opt_state, lr_scale), trained)
  params = nnx.merge_state(optax.apply_updates(trained, updates), rest)
  kept = {name: value for name, value in metrics.items() if name != "accuracy"}
  return params, opt_state, {**kept, "grad_norm": optax.tree.norm(grads)}


def eval_step(params: nnx.State, batch: Batch, model_inputs: ModelInputs | None = None, *, graphdef: nnx.GraphDef,
              metrics_fn: Callable[[jax.Array, jax.Array | None], Metrics] | None = None,
              forward: Callable = lm_forward) -> Metrics:
  """`metrics_fn(logits, targets)` of the model on `batch` (default: `lm_loss`'s metrics; a task passes its
  own, e.g. `Task.metrics` with val_bpb; targets None when the batch has none). The model's state changes
  made by the forward pass are dropped."""
  model = nnx.merge(graphdef, params)
  logits = forward(model, batch, {} if model_inputs is None else model_inputs)
  return (metrics_fn or lm_metrics)(logits, batch.get("targets"))


def jit_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, mesh: Mesh, params: nnx.State,
                   opt_state: optax.OptState, **step_kwargs):
  """`train_step` wrapped in `jax.jit` with explicit shardings and donation.

  Args:
    graphdef, optimizer: static parts of the step (closed over).
    mesh: from `make_mesh`; params / opt_state shardings follow the logical-axis rules, the batch is split
      over ("data", "fsdp"), model inputs, lr_scale and metrics are replicated.
    params, opt_state: arrays or `jax.ShapeDtypeStruct`s giving the structure the shardings are built for.
    step_kwargs: grad_accum_steps, parallel_branches, z_loss, compute_dtype, forward.
  Returns:
    step(params, opt_state, batch, model_inputs, lr_scale) -> (params, opt_state, metrics), whose params and
    opt_state arguments are donated (do not reuse them after the call). Place params and opt_state first with
    `place_train_state(params, opt_state, mesh)`: arrays on other shardings are resharded, and unplaced ones
    make the second call compile the step again. `aira_jax.train.trainer.Trainer` compiles it ahead (preflight)
    and keeps one compiled program per input signature.
  """
  params_sharding = param_shardings(params, mesh)
  opt_sharding = tree_shardings(opt_state, mesh)
  data, rep = batch_sharding(mesh), replicated(mesh)
  return jax.jit(
      functools.partial(train_step, graphdef=graphdef, optimizer=optimizer, **step_kwargs),
      in_shardings=(params_sharding, opt_sharding, data, rep, rep),
      out_shardings=(params_sharding, opt_sharding, rep),
      donate_argnums=(0, 1),
  )


def jit_eval_step(graphdef: nnx.GraphDef, mesh: Mesh, params: nnx.State,
                  metrics_fn: Callable[[jax.Array, jax.Array | None], Metrics] | None = None,
                  forward: Callable = lm_forward):
  """`eval_step` wrapped in `jax.jit`: params keep their shardings, the batch is split over the batch axes,
  model inputs and metrics are replicated. Returns eval(params, batch, model_inputs) -> metrics."""
  rep = replicated(mesh)
  return jax.jit(functools.partial(eval_step, graphdef=graphdef, metrics_fn=metrics_fn, forward=forward),
                 in_shardings=(param_shardings(params, mesh), batch_sharding(mesh), rep), out_shardings=rep)
