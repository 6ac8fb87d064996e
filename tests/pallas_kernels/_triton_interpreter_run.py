"""Runs the raw Triton forward kernels (impl="triton") in Triton's interpreter on this CPU host; a script, started
by `triton_interpreter_test.py` in a fresh process (TRITON_INTERPRET must be set before triton is imported).

jax_triton cannot launch on a CPU, so `_jax_triton.triton_call` is replaced by a host callback that launches the
kernel with the same calling convention (inputs, then outputs, then constexprs) on torch CPU tensors, which the
interpreter needs. The public entry points then run as on a GPU, forward only (their backward compiles Pallas for
a GPU). float32 only: the interpreter's bfloat16 dot multiplies the raw 16-bit patterns. Prints one JSON object:
relative errors (||got - want|| / ||want||) against the references, in float32.
"""

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pallas_kernels.ssm import _jax_triton, api, selective_scan_reference, ssd_pallas, ssd_reference  # noqa: E402
from pallas_kernels.ssm import triton_scan  # noqa: E402
from testing_utils import random_ssd_inputs  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def interpreted_triton_call(*args, kernel, out_shape, grid, num_warps, num_stages=1, **constexprs):
  """`_jax_triton.triton_call` for the interpreter: a host callback that launches `kernel` on torch tensors."""
  del num_warps, num_stages

  def launch(*arrays):
    inputs = [torch.from_numpy(np.array(a, np.float32)) for a in arrays]
    outputs = [torch.zeros(s.shape, dtype=torch.float32) for s in out_shape]
    kernel[grid](*inputs, *outputs, **constexprs)
    return tuple(o.numpy().astype(s.dtype) for o, s in zip(outputs, out_shape))

  return jax.pure_callback(launch, tuple(out_shape), *args)


def _rel(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def ssd_errors(seed=0) -> dict:
  """ssd(impl="triton") against the reference (ragged seq, groups, padded head_dim and d_state, initial and final
  state, D), and the chunk entry states it saves for the backward against the Pallas kernel's (interpreted)."""
  batch, seq, heads, head_dim, groups, d_state, chunk = 2, 37, 4, 20, 2, 12, 16
  inputs = random_ssd_inputs(seed, batch, seq, heads, head_dim, groups, d_state)
  x, dt, A, B, C, D, s0 = (inputs[k] for k in ("x", "dt", "A", "B", "C", "D", "initial_state"))
  kw = dict(D=D, initial_state=s0, chunk_size=chunk, return_final_state=True)
  y, final = api.ssd(x, dt, A, B, C, **kw, impl="triton")
  y_ref, final_ref = ssd_reference(x, dt, A, B, C, **kw)
  # The residuals: the same prepared inputs (padded to whole chunks, as ssd_pallas does) through both kernels.
  lp = -(-seq // chunk) * chunk
  xp, dtp, bp_, cp = (np.pad(a, [(0, 0), (0, lp - seq)] + [(0, 0)] * (a.ndim - 2)) for a in (x, dt, B, C))
  acum = jnp.cumsum((dtp * A).reshape(batch, lp // chunk, chunk, heads), axis=2).reshape(batch, lp, heads)
  prepared = (jnp.asarray(xp), jnp.asarray(dtp), acum, jnp.asarray(bp_), jnp.asarray(cp), jnp.asarray(s0), chunk)
  states = {kernel: ssd_pallas._ssd_fwd(*prepared, 16, 16, "gpu", kernel == "pallas", kernel)[1][-1]
            for kernel in ("triton", "pallas")}
  return dict(ssd_y=_rel(y, y_ref), ssd_final_state=_rel(final, final_ref),
              ssd_saved_states=_rel(states["triton"], states["pallas"]))


def selective_scan_errors(seed=1) -> dict:
  """selective_scan(impl="triton") against the reference (every option: D, z, delta_bias + softplus, groups,
  ragged d_inner for the channel blocks, initial and final state)."""
  rng = np.random.default_rng(seed)
  f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  batch, seq, d_inner, groups, d_state = 2, 19, 40, 2, 6
  args = (f(batch, seq, d_inner), f(batch, seq, d_inner), -rng.uniform(0.2, 2.0, (d_inner, d_state)).astype(
      np.float32), f(batch, seq, groups, d_state), f(batch, seq, groups, d_state))
  kw = dict(D=f(d_inner), z=f(batch, seq, d_inner), delta_bias=f(d_inner), delta_softplus=True,
            initial_state=f(batch, d_inner, d_state), return_final_state=True)
  y, final = api.selective_scan(*args, **kw, impl="triton")
  y_ref, final_ref = selective_scan_reference(*args, **kw)
  return dict(selective_scan_y=_rel(y, y_ref), selective_scan_final_state=_rel(final, final_ref))


def main() -> int:
  _jax_triton.triton_call = interpreted_triton_call  # ssd_pallas imports it at call time
  triton_scan.triton_call = interpreted_triton_call
  api.require_cuda_backend = triton_scan.require_cuda_backend = lambda: None
  print(json.dumps({**ssd_errors(), **selective_scan_errors()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
