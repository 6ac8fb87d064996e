"""Tests of the seccomp filter that forbids new processes but allows threads.

The behaviour tests run small Python programs under `bwrap --seccomp FD` (the filter is passed through a
pipe) and skip when bubblewrap is missing or cannot make a PID namespace here.
"""

import functools
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from aira_jax.design import seccomp

FORK_VIA_LIBC = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.fork()
if pid == 0:
  os._exit(0)
err = ctypes.get_errno()
if pid > 0:
  os.waitpid(pid, 0)
print(pid, err)
"""


@functools.cache
def _bwrap_problem() -> str | None:
  """Why bubblewrap cannot be used here, or None."""
  if shutil.which("bwrap") is None:
    return "bwrap is not installed"
  probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"],
                         capture_output=True, text=True, timeout=30)
  if probe.returncode != 0:
    return f"bwrap cannot run here: {probe.stderr.strip()}"
  return None


def run_in_bwrap(source: str, use_filter: bool = True) -> subprocess.CompletedProcess:
  """Runs `python -c source` (this interpreter) under bwrap, with the filter unless `use_filter` is False."""
  problem = _bwrap_problem()
  if problem:
    pytest.skip(problem)
  cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid"]
  fds = ()
  if use_filter:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as f:  # ~100 bytes: fits in the pipe's buffer.
      f.write(seccomp.no_new_processes_filter())
    cmd += ["--seccomp", str(read_fd)]
    fds = (read_fd,)
  try:
    return subprocess.run(cmd + ["--", sys.executable, "-c", textwrap.dedent(source)], pass_fds=fds,
                          capture_output=True, text=True, timeout=60)
  finally:
    for fd in fds:
      os.close(fd)


def test_program_is_whole_instructions_and_unsupported_machine_raises(monkeypatch):
  if not seccomp.supported():
    pytest.skip("not Linux x86_64/aarch64")
  program = seccomp.no_new_processes_filter()
  assert program and len(program) % 8 == 0
  monkeypatch.setattr(seccomp, "supported", lambda: False)
  with pytest.raises(RuntimeError, match="seccomp"):
    seccomp.no_new_processes_filter()


def test_threads_and_numpy_work_under_filter():
  source = """
  import threading
  out = []
  t = threading.Thread(target=lambda: out.append(sum(range(10))))
  t.start()
  t.join()
  import numpy as np
  print(out[0], int(np.ones((64, 64)).dot(np.ones(64)).sum()))
  """
  result = run_in_bwrap(source)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["45", "4096"]


def test_os_fork_fails_with_eperm_under_filter():
  result = run_in_bwrap("""
  import os
  try:
    os.fork()
  except PermissionError as e:
    print("denied", e.errno)
  """)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["denied", "1"]


def test_subprocess_fails_under_filter():
  result = run_in_bwrap("""
  import subprocess
  try:
    subprocess.run(["/bin/true"])
  except OSError as e:
    print("denied", type(e).__name__)
  """)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("denied"), result.stdout


def test_libc_fork_fails_with_eperm_under_filter_and_succeeds_without():
  denied = run_in_bwrap(FORK_VIA_LIBC)
  assert denied.returncode == 0, denied.stderr
  assert denied.stdout.split() == ["-1", "1"]  # EPERM.
  allowed = run_in_bwrap(FORK_VIA_LIBC, use_filter=False)
  assert allowed.returncode == 0, allowed.stderr
  assert int(allowed.stdout.split()[0]) > 0
