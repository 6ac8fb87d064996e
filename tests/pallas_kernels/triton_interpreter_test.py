"""The raw Triton forward kernels (impl="triton": SSD and the selective scan) in Triton's interpreter on CPU,
through the public entry points, against the plain-jnp references; the SSD kernel's saved chunk states against
the Pallas kernel's. Runs `_triton_interpreter_run.py` in a fresh process (TRITON_INTERPRET is read when triton is
imported). Needs triton and torch (the interpreter launches on torch tensors); skipped without them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]


@pytest.fixture(scope="module")
def errors():
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT), str(_ROOT / "tests")]), JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, str(_HERE / "_triton_interpreter_run.py")], env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["ssd_y", "ssd_final_state", "ssd_saved_states", "selective_scan_y",
                                  "selective_scan_final_state"])
def test_raw_triton_forward_matches_the_reference(errors, name):
  assert errors[name] < 1e-5, errors
