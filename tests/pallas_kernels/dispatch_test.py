"""Tests for the impl resolution shared by every kernel entry point."""

import pytest

from pallas_kernels import resolve_impl


@pytest.mark.parametrize("kernel, backend, expected", [
    ("flash_attention", "cpu", "xla"), ("flash_attention", "gpu", "pallas"), ("flash_attention", "tpu", "pallas"),
    ("ssd", "cuda", "pallas"), ("ssd", "cpu", "xla"), ("ssd", "tpu", "pallas"), ("selective_scan", "gpu", "pallas"), (None, "gpu", "pallas"),
])
def test_auto_by_backend_and_kernel(kernel, backend, expected):
  assert resolve_impl("auto", kernel=kernel, backend=backend) == expected


def test_explicit_impls_and_errors():
  assert resolve_impl("pallas_interpret") == "pallas_interpret"
  with pytest.raises(ValueError, match="unknown impl 'cuda'; choose one of auto, xla"):
    resolve_impl("cuda")
  with pytest.raises(ValueError, match="impl 'triton' is not offered by this kernel"):
    resolve_impl("triton", available=("auto", "xla", "pallas"))
