"""Tests for the compile-ahead preflight: counts against hand and analytic numbers, memory, refusal."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from aira_jax.models import LanguageModel, count_params, flops_per_token, preset_config
from aira_jax.train.preflight import (PreflightError, PreflightReport, check_fits, device_memory_bytes,
                                      format_bytes, format_report, preflight)

LAYOUT = "AM"
BATCH, SEQ = 2, 64


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _lm_training_step(layout, config):
  """A jitted forward + backward of LanguageModel(layout, config) and its parameters."""
  graphdef, params = nnx.split(LanguageModel(layout, config, rngs=nnx.Rngs(0)), nnx.Param)

  def loss(p, tokens):
    logits = nnx.merge(graphdef, p)(tokens)
    return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()

  return jax.jit(jax.value_and_grad(loss)), params


# One test per model compile: each compile of the LM costs seconds, and test workers would each repeat a
# shared fixture.
def test_training_step_of_a_language_model():
  config = preset_config("proxy", vocab_size=64, ssm_chunk_size=32)
  step, params = _lm_training_step(LAYOUT, config)
  analytic = flops_per_token(LAYOUT, config, SEQ, training=True) * BATCH * SEQ
  report = preflight(step, _abstract(params), jax.ShapeDtypeStruct((BATCH, SEQ), jnp.int32), params=params,
                     analytic_flops=analytic, label="small LM")
  assert report.param_count == count_params(LAYOUT, config).total
  # XLA also counts the elementwise work (norms, softmax, loss) the analytic count leaves out: 1.016 measured
  # on jax 0.10.2 CPU; counting_test.py's training bounds, widened a little for the loss.
  assert 0.9 < report.flops_ratio < 1.1, report.flops_ratio
  assert report.num_devices == 1
  assert report.bytes_accessed > 0
  assert report.compile_seconds > 0 and report.lower_seconds > 0

  text = format_report(report, device_memory_bytes=64 << 20)
  for row in ("preflight small LM", "parameters", f"{report.param_count:,}", "FLOPs/step", "XLA / analytic",
              "memory/device", "of 64.0 MiB", "compile time"):
    assert row in text, text

  peak = report.peak_memory_bytes
  if peak is None:  # Backends without a memory analysis; the report must still be usable.
    assert report.fits(1)
    return
  param_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  assert report.argument_bytes >= param_bytes
  assert report.output_bytes >= param_bytes  # The gradients.
  assert peak >= report.argument_bytes + report.output_bytes - report.alias_bytes


def test_too_small_device_is_refused_before_running():
  step, params = _lm_training_step("M", preset_config("tiny"))
  with pytest.raises(PreflightError, match=r"tiny LM: does not fit: needs .* of 1\.0 KiB per device; reduce"):
    preflight(step, _abstract(params), jax.ShapeDtypeStruct((BATCH, SEQ), jnp.int32), device_memory_bytes=1024,
              label="tiny LM")


def test_concrete_and_plain_functions_work():
  m, k, n = 8, 16, 32
  a, b = jnp.ones((m, k)), jnp.ones((k, n))
  report = preflight(jnp.dot, a, b)  # A plain function on concrete arrays: wrapped in jit, never run.
  assert report.flops == 2 * m * k * n
  assert report.param_count is None and report.flops_ratio is None


def test_hand_count_of_a_matmul_on_abstract_inputs():
  m, k, n = 64, 48, 80
  report = preflight(jax.jit(jnp.dot), jax.ShapeDtypeStruct((m, k), jnp.float32),
                     jax.ShapeDtypeStruct((k, n), jnp.float32), analytic_flops=2 * m * k * n)
  assert report.flops == 2 * m * k * n
  assert report.flops_ratio == 1.0


def test_sharded_inputs_count_per_device_flops():
  mesh = jax.make_mesh((8,), ("data",))
  m, k, n = 64, 16, 32
  a = jax.ShapeDtypeStruct((m, k), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec("data", None)))
  b = jax.ShapeDtypeStruct((k, n), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
  report = preflight(jnp.dot, a, b, analytic_flops=2 * m * k * n)
  assert report.num_devices == 8
  assert report.flops == 2 * m * k * n / 8
  assert report.flops_ratio == 1.0
  if report.peak_memory_bytes is not None:
    assert report.argument_bytes >= (m // 8 * k + k * n) * 4


def test_memory_covers_known_argument_and_output_sizes():
  x = jax.ShapeDtypeStruct((256, 128), jnp.float32)
  report = preflight(lambda v: (v * 2.0 + 1.0, jnp.zeros((512, 64), jnp.float32)), x)
  if report.peak_memory_bytes is None:
    pytest.skip("backend reports no memory analysis")
  arg_bytes, out_bytes = 256 * 128 * 4, (256 * 128 + 512 * 64) * 4
  assert report.argument_bytes >= arg_bytes and report.output_bytes >= out_bytes
  assert report.peak_memory_bytes >= arg_bytes + out_bytes
  assert report.fits(report.peak_memory_bytes) and not report.fits(report.peak_memory_bytes - 1)
  assert not report.fits(arg_bytes)


class _FakeCompiled:
  """A compiled program as older jax (cost list) or backends without a memory analysis return it."""

  def cost_analysis(self):
    return [{"flops": 10.0, "bytes accessed": 40.0}]

  def memory_analysis(self):
    return None


class _FakeJitted:

  def lower(self, *args):
    del args
    return self

  def compile(self):
    return _FakeCompiled()


def test_list_cost_analysis_and_missing_memory_analysis_are_handled():
  report = preflight(_FakeJitted(), np.zeros(3), device_memory_bytes=1, label="fake")  # Unknown memory fits.
  assert report.flops == 10.0 and report.bytes_accessed == 40.0
  assert report.peak_memory_bytes is None and report.argument_bytes is None
  assert report.fits(1)
  assert "memory/device" in format_report(report) and "unknown" in format_report(report)


def test_check_fits_message_names_both_sizes():
  gib = 1 << 30
  report = PreflightReport(label="", param_count=None, flops=None, analytic_flops=None, bytes_accessed=None,
                           argument_bytes=int(10 * gib), output_bytes=int(2 * gib), temp_bytes=int(0.3 * gib) + 1,
                           alias_bytes=0, num_devices=1, lower_seconds=0.0, compile_seconds=0.0)
  check_fits(report, 16 * gib)
  check_fits(report, None)
  with pytest.raises(PreflightError) as error:
    check_fits(report, 8 * gib)
  assert str(error.value) == ("does not fit: needs 12.3 GiB of 8.0 GiB per device; reduce batch_size, seq_len or "
                              "model size, or shard over more devices")


def test_compile_failure_is_a_preflight_error():
  with pytest.raises(PreflightError, match="bad shapes: compilation failed"):
    preflight(jnp.dot, jax.ShapeDtypeStruct((2, 3), jnp.float32), jax.ShapeDtypeStruct((4, 5), jnp.float32),
              label="bad shapes")


def test_device_memory_and_byte_formatting():
  limit = device_memory_bytes()
  assert limit is None or limit > 0  # None on CPU.
  assert format_bytes(512) == "512 B" and format_bytes(3 << 20) == "3.0 MiB"
