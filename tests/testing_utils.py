"""Helpers shared by tests (importable because setup.cfg puts tests/ on pythonpath)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def param_arrays(module: nnx.Module) -> dict[str, np.ndarray]:
  """Every parameter of `module` as float64 numpy, keyed by its dotted path."""
  flat = nnx.to_flat_state(nnx.state(module, nnx.Param))
  return {".".join(str(k) for k in path): np.asarray(v.get_value(), np.float64) for path, v in flat}


def num_params(module: nnx.Module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def assert_causal(fn, inputs: jax.Array, position: int, *, atol: float = 1e-6):
  """Changes inputs[:, position] and checks fn's outputs before `position` are unchanged and at `position`
  changed. `inputs` is (batch, seq, ...) floats or ints (ints are shifted by one, modulo 7)."""
  if jnp.issubdtype(inputs.dtype, jnp.integer):
    changed = inputs.at[:, position].set((inputs[:, position] + 1) % 7)
  else:
    changed = inputs.at[:, position].add(1.0)
  before, after = np.asarray(fn(inputs)), np.asarray(fn(changed))
  np.testing.assert_allclose(after[:, :position], before[:, :position], atol=atol, rtol=0)
  assert np.max(np.abs(after[:, position] - before[:, position])) > 1e-4, "output ignores its own position"


@functools.partial(jax.jit, static_argnums=(0,))
def value_and_grads(fn, args: tuple, cotangents):
  """fn(*args) and the gradients of <fn(*args), cotangents> wrt every arg, in one jitted vjp."""
  out, pullback = jax.vjp(fn, *args)
  return out, pullback(cotangents)


def random_ssd_inputs(seed: int, batch: int, seq: int, heads: int, head_dim: int, groups: int,
                      d_state: int) -> dict[str, np.ndarray]:
  """Fresh float32 inputs of the Mamba-2 scan: x, dt > 0, A < 0, B, C, D and an initial state."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  return dict(
      x=normal(batch, seq, heads, head_dim),
      dt=rng.uniform(0.05, 1.0, (batch, seq, heads)).astype(np.float32),
      A=-rng.uniform(0.2, 2.0, (heads,)).astype(np.float32),
      B=normal(batch, seq, groups, d_state),
      C=normal(batch, seq, groups, d_state),
      D=normal(heads),
      initial_state=normal(batch, heads, head_dim, d_state),
  )
