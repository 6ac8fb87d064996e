"""`aira_jax.host_memory.keep_freed_memory`: repeated XLA:CPU executions stop page-faulting their temporaries.

Each case runs in a fresh process (malloc settings are per process and must precede JAX's threads): a jitted
function whose temporary buffer holds two materialised intermediates runs 25 times, and the minor page
faults of the last eight calls are counted (a buffer may be freed just after the next call allocates its own,
so the heap needs a few calls to grow to its steady size). glibc's default maps and unmaps a buffer above 32 MB
on every call.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from aira_jax import host_memory
    mode, rows = sys.argv[1], int(sys.argv[2])
    applied = host_memory.keep_freed_memory() if mode == "on" else False
    import jax, jax.numpy as jnp

    @jax.jit
    def two_temporaries(x):  # the barriers make XLA materialise both intermediates
      a = jax.lax.optimization_barrier(jnp.sin(x))
      b = jax.lax.optimization_barrier(jnp.cos(a))
      return jnp.sum(a) + jnp.sum(b)

    x = jnp.ones((rows, 4096), jnp.float32)
    temp = two_temporaries.lower(x).compile().memory_analysis().temp_size_in_bytes
    for _ in range(16):  # the heap grows until it holds a freed buffer when the next call allocates
      two_temporaries(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
      two_temporaries(x).block_until_ready()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 8
    print(json.dumps({"applied": applied, "pages": temp / 4096, "faults_per_call": faults}))
""")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the malloc settings exist only on Linux with glibc")

LARGE, MEDIUM = 4096, 1536  # rows of 4096 floats: temporaries of 128 MB and 48 MB


def _run(mode: str, rows: int, **env_overrides) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "AIRA_JAX_KEEP_FREED_MEMORY"}
  env.update(PYTHONPATH=REPO, XLA_FLAGS="", **env_overrides)
  out = subprocess.run([sys.executable, "-c", _SCRIPT, mode, str(rows)], env=env, capture_output=True,
                       text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_glibc_faults_the_temporary_on_every_call():
  result = _run("off", MEDIUM)
  assert result["pages"] * 4096 > 40 * 2**20, result  # the premise: above glibc's 32 MB mmap threshold
  assert result["faults_per_call"] > 0.5 * result["pages"], result


def test_kept_memory_reuses_a_temporary_larger_than_a_thread_heap():
  result = _run("on", LARGE)
  assert result["applied"]
  assert result["pages"] * 4096 > 64 * 2**20, result  # larger than a thread arena's heap
  # most calls reuse the heap; now and then a freed buffer has been split by small allocations and the heap
  # grows instead (measured: 0 to 2 of 8 calls fault)
  assert result["faults_per_call"] < 0.5 * result["pages"], result


def test_environment_switch_leaves_malloc_alone():
  result = _run("on", MEDIUM, AIRA_JAX_KEEP_FREED_MEMORY="0")
  assert not result["applied"]
  assert result["faults_per_call"] > 0.5 * result["pages"], result
