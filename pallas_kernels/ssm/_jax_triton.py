"""The scans' one touch point with jax_triton (its API has shifted between releases; adapt here). jax_triton is
imported lazily: the optional `[gpu]` extra, which needs a CUDA jaxlib."""

from __future__ import annotations

import jax


def require_cuda_backend() -> None:
  """Raises ValueError (naming the alternatives) unless the default backend is a CUDA GPU: impl="triton" launches
  raw Triton kernels through jax_triton, which needs one."""
  if jax.default_backend() not in ("gpu", "cuda"):
    raise ValueError(f"impl='triton' needs a CUDA GPU backend; this is {jax.default_backend()!r}. "
                     "Use impl='pallas_interpret' or 'xla' here.")


def triton_call(*args, kernel, out_shape, grid, num_warps, num_stages=1, **constexprs):
  """Launches the raw Triton `kernel` on `args` (device arrays) through jax_triton; returns `out_shape`'s arrays."""
  import jax_triton  # lazy: optional `[gpu]` extra

  return jax_triton.triton_call(*args, kernel=kernel, out_shape=out_shape, grid=grid, num_warps=num_warps,
                                num_stages=num_stages, **constexprs)
