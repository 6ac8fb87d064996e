"""Tests for the impl resolution shared by every kernel entry point."""

import pytest

from pallas_kernels import resolve_impl


@pytest.mark.parametrize("kernel, backend, expected", [
    ("flash_attention", "cpu", "xla"), ("flash_attention", "gpu", "pallas"), ("flash_attention", "tpu", "pallas"),
    ("ssd", "cuda", "pallas"), ("ssd", "cpu", "xla"), ("ssd", "tpu", "pallas"), ("selective_scan", "gpu", "pallas"),
    (None, "gpu", "pallas"),
])
def test_auto_by_backend_and_kernel(kernel, backend, expected):
  assert resolve_impl("auto", kernel=kernel, backend=backend) == expected


@pytest.mark.parametrize("kernel, backend, float32, expected", [
    ("ssd", "gpu", True, "xla"), ("ssd", "gpu", False, "pallas"), ("ssd", "tpu", True, "pallas"),
    ("flash_attention", "gpu", True, "pallas"), ("selective_scan", "cuda", True, "pallas"),
])
def test_auto_on_gpu_by_compute_dtype(kernel, backend, float32, expected):
  assert resolve_impl("auto", kernel=kernel, backend=backend, float32=float32) == expected


def test_explicit_impls_and_errors():
  assert resolve_impl("pallas_interpret") == "pallas_interpret"
  with pytest.raises(ValueError, match="unknown impl 'cuda'; choose one of auto, xla"):
    resolve_impl("cuda")
  with pytest.raises(ValueError, match="impl 'triton' is not offered by this kernel"):
    resolve_impl("triton", available=("auto", "xla", "pallas"))


@pytest.mark.parametrize("dtypes, backend, expected", [
    (("bfloat16",) * 3, "gpu", "pallas"), (("bfloat16", "bfloat16", "float32"), "gpu", "xla"),
    (("float32",) * 3, "gpu", "xla"), (("float32",) * 3, "tpu", "pallas"), (("bfloat16",) * 3, "cpu", "xla"),
])
def test_ssd_auto_follows_the_compute_dtype(dtypes, backend, expected):
  import jax
  import jax.numpy as jnp
  from pallas_kernels.ssm.api import resolve_ssd_impl
  x, b, c = (jax.ShapeDtypeStruct((1, 8, 2, 4), jnp.dtype(d)) for d in dtypes)
  assert resolve_ssd_impl("auto", x, b, c, backend=backend) == expected
