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


TRITON_CUSTOM_CALL = "__gpu$xla.gpu.triton"


def export_text(fn, shapes, platform: str) -> str:
  """StableHLO text of `fn` exported for `platform`. Version-specific: the Triton custom call has no export
  compatibility guarantee, so that safety check is switched off (jax 0.10 / 0.11 `DisabledSafetyCheck`)."""
  checks = [jax.export.DisabledSafetyCheck.custom_call(TRITON_CUSTOM_CALL)]
  return jax.export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(*shapes).mlir_module()


def pallas_triton_modules(fn, shapes) -> list[str]:
  """Triton IR text of every Pallas kernel in `fn`, in lowering order, captured while exporting for "cuda".

  Version-specific (jax 0.10 / 0.11 internals): wraps `jax._src.pallas.triton.lowering.
  lower_jaxpr_to_triton_module` to print each module without debug locations.
  """
  from jax._src.pallas.triton import lowering

  modules, original = [], lowering.lower_jaxpr_to_triton_module

  def capture(*args, **kwargs):
    result = original(*args, **kwargs)
    modules.append(result.module.operation.get_asm(enable_debug_info=False))
    return result

  lowering.lower_jaxpr_to_triton_module = capture
  try:
    export_text(fn, shapes, "cuda")
  finally:
    lowering.lower_jaxpr_to_triton_module = original
  return modules


def compile_triton_for_sm90(text: str, path, num_warps: int, num_stages: int):
  """Compiles Triton IR text to a cubin for sm_90 with the installed `triton` (no GPU needed)."""
  import triton
  from triton.backends.compiler import GPUTarget

  path.write_text(text)
  return triton.compile(str(path), target=GPUTarget("cuda", 90, 32),
                        options=dict(num_warps=num_warps, num_stages=num_stages))
