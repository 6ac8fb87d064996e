"""Helpers shared by tests (importable because setup.cfg puts tests/ on pythonpath)."""

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
