"""`aira_jax.host_memory.keep_freed_memory`: repeated XLA:CPU executions stop page-faulting their temporaries.

Each case runs in a fresh process (malloc settings are per process and must precede JAX's threads): a jitted
function with a 128 MB temporary buffer runs five times and the minor page faults of the last four are
counted. Without the settings glibc maps and unmaps that buffer on every call (about 32,000 faults a call);
with them the heap keeps it.
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
    applied = host_memory.keep_freed_memory() if sys.argv[1] == "on" else False
    import jax, jax.numpy as jnp

    @jax.jit
    def two_temporaries(x):  # the barriers make XLA materialise both 64 MB intermediates
      a = jax.lax.optimization_barrier(jnp.sin(x))
      b = jax.lax.optimization_barrier(jnp.cos(a))
      return jnp.sum(a) + jnp.sum(b)

    x = jnp.ones((4096, 4096), jnp.float32)
    temp = two_temporaries.lower(x).compile().memory_analysis().temp_size_in_bytes
    two_temporaries(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
      two_temporaries(x).block_until_ready()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
    print(json.dumps({"applied": applied, "temp_bytes": temp, "faults_per_call": faults}))
""")

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                 reason="the malloc settings exist only on Linux with glibc")


def _run(mode: str, **env_overrides) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "AIRA_JAX_KEEP_FREED_MEMORY"}
  env.update(PYTHONPATH=REPO, XLA_FLAGS="", **env_overrides)
  out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, capture_output=True, text=True,
                       timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_linux
def test_kept_memory_removes_per_call_page_faults():
  default, kept = _run("off"), _run("on")
  pages = default["temp_bytes"] / 4096
  assert default["temp_bytes"] >= 100 * 2**20, default  # the premise: a large temporary buffer
  assert not default["applied"] and kept["applied"]
  assert default["faults_per_call"] > 0.5 * pages, default  # glibc maps the buffer anew on every call
  assert kept["faults_per_call"] < 0.02 * pages, kept


@glibc_linux
def test_environment_switch_leaves_malloc_alone():
  result = _run("on", AIRA_JAX_KEEP_FREED_MEMORY="0")
  assert not result["applied"]
  assert result["faults_per_call"] > 0.5 * result["temp_bytes"] / 4096, result
