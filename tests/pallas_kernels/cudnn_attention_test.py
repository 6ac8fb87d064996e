"""impl="cudnn" of flash_attention: cuDNN's fused attention through `jax.nn.dot_product_attention`.

cuDNN itself needs a CUDA GPU (the `gpu`-marked test); on CPU the tests check what can be checked without it:
that this API's options map onto `jax.nn.dot_product_attention`'s (the same function run with its "xla"
implementation matches the float64 reference and the reference's gradients, for causal, sliding-window, grouped
KV and custom-scale attention on fresh random inputs), and that what cuDNN cannot do is refused with a clear error.
"""

import functools

import jax
import numpy as np
import pytest

from attention_cases import assert_matches_reference, attention_inputs, numpy_attention
from pallas_kernels import selective_scan
from pallas_kernels.attention import flash_attention
from pallas_kernels.attention.api import dot_product_attention


@pytest.mark.parametrize("heads, kv_heads, kw", [
    (4, 4, dict(causal=True)),
    (4, 2, dict(causal=True, sliding_window=5)),
    (4, 1, dict(causal=False, scale=0.3)),
    (2, 2, dict(causal=False, sliding_window=3)),
])
def test_the_option_mapping_matches_the_reference(heads, kv_heads, kw):
  seed = heads * 10 + kv_heads + (kw.get("sliding_window") or 0)
  q, k, v, cotangent = attention_inputs(seed, 2, 12, 12, heads, kv_heads, 16)
  full = dict(causal=kw["causal"], sliding_window=kw.get("sliding_window"), scale=kw.get("scale"))
  mapped = functools.partial(dot_product_attention, implementation="xla")
  out = assert_matches_reference(mapped, q, k, v, cotangent, rtol=2e-4, atol=2e-5, **full)
  want = numpy_attention(q, k, v, causal=kw["causal"], window=kw.get("sliding_window"), scale=kw.get("scale"))
  np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=2e-4, atol=2e-5)


def test_cudnn_needs_a_cuda_gpu():
  q, k, v, _ = attention_inputs(0, 1, 8, 8, 2, 2, 16)
  with pytest.raises(ValueError, match="impl 'cudnn' needs a CUDA GPU; this backend is cpu"):
    flash_attention(q, k, v, impl="cudnn")


@pytest.mark.parametrize("kw, message", [
    (dict(softcap=30.0), "not softcap; use impl='pallas' or 'xla'"),
    (dict(mask_mod=lambda q_idx, kv_idx, head: q_idx >= kv_idx, score_mod=lambda s, *_: s),
     "not score_mod, mask_mod"),
])
def test_what_cudnn_cannot_do_is_refused_by_name(kw, message):
  q, k, v, _ = attention_inputs(1, 1, 8, 8, 2, 2, 16)
  with pytest.raises(ValueError, match=message):
    flash_attention(q, k, v, impl="cudnn", **kw)
  q_short = q[:, :4]
  with pytest.raises(ValueError, match="causal=True needs q_len == kv_len, got 4 and 8"):
    flash_attention(q_short, k, v, impl="cudnn")


def test_the_scans_do_not_offer_cudnn():
  u = np.zeros((1, 4, 2), np.float32)
  with pytest.raises(ValueError, match="impl 'cudnn' is not offered by this kernel"):
    selective_scan(u, u, np.zeros((2, 3), np.float32), np.zeros((1, 4, 1, 3), np.float32),
                   np.zeros((1, 4, 1, 3), np.float32), impl="cudnn")


@pytest.mark.gpu
def test_cudnn_matches_the_reference_on_a_gpu():
  q, k, v, cotangent = (x.astype(jax.numpy.bfloat16) for x in attention_inputs(3, 2, 256, 256, 8, 2, 64))
  assert_matches_reference(functools.partial(flash_attention, impl="cudnn"), q, k, v, cotangent, rtol=3e-2,
                           atol=3e-2, causal=True, sliding_window=64)
