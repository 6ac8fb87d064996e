"""Tests of the design sandbox: limits, the scrubbed environment, the guard, records and output handling.

Candidates are tiny modules written as `files`; only `test_jax_runs_under_default_limits` imports JAX.
"""

import os
import shutil
import textwrap
import time

import pytest

from aira_jax.design import records
from aira_jax.design.sandbox import SandboxLimits, SandboxOutcome, run_sandboxed

FAST = SandboxLimits(timeout_s=30, memory_mb=1024)


def run(source: str, args=(), limits: SandboxLimits = FAST, **kwargs) -> SandboxOutcome:
  return run_sandboxed("cand", [str(a) for a in args], files={"cand.py": textwrap.dedent(source)},
                       limits=limits, **kwargs)


def test_success_reports_output_and_argv():
  outcome = run("import sys; print('hello', sys.argv[1:])", args=["a", "b"])
  assert outcome.ok and outcome.killed is None and outcome.returncode == 0
  assert outcome.stdout == "hello ['a', 'b']\n"
  assert outcome.workdir is None


def _alive(pid: int) -> bool:
  """True while `pid` exists and is not a zombie."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False


def test_infinite_loop_is_killed_at_timeout_with_its_process_group():
  # The grandchild is forked through ctypes (native code, which the audit hook cannot see): the group kill
  # still ends it.
  source = """
  import ctypes, time
  pid = ctypes.CDLL(None).fork()
  if pid == 0:
    while True:
      time.sleep(1)
  print(pid, flush=True)
  while True:
    pass
  """
  outcome = run(source, limits=SandboxLimits(timeout_s=2))
  assert outcome.killed == "timeout"
  assert outcome.returncode == -9
  assert 2 <= outcome.seconds < 20
  grandchild = int(outcome.stdout.split()[0])
  for _ in range(100):
    if not _alive(grandchild):
      break
    time.sleep(0.02)
  assert not _alive(grandchild)


def test_starting_a_process_is_blocked():
  outcome = run("import subprocess; subprocess.Popen(['sleep', '100'])")
  assert outcome.returncode == 1 and outcome.killed is None
  assert "PermissionError" in outcome.stderr
  assert any("subprocess.Popen" in line for line in outcome.blocked)


def test_huge_allocation_fails_as_memory():
  outcome = run("x = bytearray(10**11)", limits=SandboxLimits(timeout_s=30, memory_mb=512))
  assert outcome.killed == "memory"
  assert "MemoryError" in outcome.stderr


def test_growing_allocation_fails_as_memory():
  source = """
  chunks = []
  while True:
    chunks.append(bytearray(50 * 2**20))
  """
  outcome = run(source, limits=SandboxLimits(timeout_s=30, memory_mb=300))
  assert outcome.killed == "memory"


@pytest.mark.parametrize("source, killed", [("import ctypes; ctypes.string_at(0)", "signal SIGSEGV"),
                                            ("import os; os.abort()", "signal SIGABRT")])
def test_interpreter_crash_is_decoded(source, killed):
  outcome = run(source)
  assert outcome.killed == killed
  assert "Fatal Python error" in outcome.stderr  # faulthandler's traceback


def test_environment_is_scrubbed(monkeypatch):
  secrets = {"GOOGLE_API_KEY": "secret-google-123", "OPENAI_API_KEY": "secret-openai-456",
             "AWS_SECRET_ACCESS_KEY": "secret-aws-789", "HF_TOKEN": "secret-hf-000",
             "HTTPS_PROXY": "http://secret-proxy:3128"}
  for name, value in secrets.items():
    monkeypatch.setenv(name, value)
  outcome = run("import os; print(dict(os.environ))")
  assert outcome.ok
  for name, value in secrets.items():
    assert name not in outcome.stdout
    assert value not in outcome.stdout
  env = eval(outcome.stdout)  # noqa: S307 (our own child's dict repr)
  assert env["PYTHONHASHSEED"] == "0"
  assert env["HOME"] == os.path.dirname(env[records.RECORDS_ENV])
  assert "XLA_FLAGS" not in env  # the test suite sets it; it is copied only on request


def test_extra_env_passes_and_refuses_secrets():
  outcome = run("import os; print(os.environ['XLA_FLAGS'])", extra_env={"XLA_FLAGS": "--xla_dump_to=x"})
  assert outcome.stdout.strip() == "--xla_dump_to=x"
  for name in ("OPENAI_API_KEY", "HF_TOKEN", "PYTHONPATH", "HTTP_PROXY"):
    with pytest.raises(ValueError):
      run("pass", extra_env={name: "x"})


def test_write_outside_is_blocked_and_inside_works(tmp_path):
  outside = tmp_path / "outside.txt"
  source = """
  import sys
  open('inside.txt', 'w').write('ok')
  print(open('inside.txt').read())
  open(sys.argv[1], 'w').write('escaped')
  """
  outcome = run(source, args=[outside], workdir=tmp_path / "work")
  assert not outside.exists()
  assert outcome.stdout == "ok\n"
  assert "PermissionError" in outcome.stderr and outcome.blocked
  assert (tmp_path / "work" / "inside.txt").read_text() == "ok"


def test_guard_blocks_files_processes_network_and_signals(tmp_path):
  (tmp_path / "keep").mkdir()
  (tmp_path / "victim.txt").write_text("precious")
  source = """
  import os, shutil, socket, sys
  out = sys.argv[1]
  attempts = {
    "rename": lambda: os.rename(os.path.join(out, "victim.txt"), "stolen.txt"),
    "remove": lambda: os.remove(os.path.join(out, "victim.txt")),
    "rmtree": lambda: shutil.rmtree(os.path.join(out, "keep")),
    "mkdir": lambda: os.mkdir(os.path.join(out, "new")),
    "symlink_write": lambda: (os.symlink(os.path.join(out, "victim.txt"), "link"), open("link", "w")),
    "hardlink": lambda: os.link(os.path.join(out, "victim.txt"), "hard"),
    "system": lambda: os.system("true"),
    "fork": os.fork,
    "connect": lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
    "bind": lambda: socket.socket().bind(("127.0.0.1", 0)),
    "kill_parent": lambda: os.kill(os.getppid(), 0),
  }
  for name, attempt in attempts.items():
    try:
      attempt()
      print(name, "ALLOWED")
    except PermissionError:
      print(name, "blocked")
  os.makedirs("sub/dir"); open("sub/dir/f", "w").close(); shutil.rmtree("sub")
  print("inside ok")
  """
  outcome = run(source, args=[tmp_path])
  assert outcome.ok, outcome.stderr
  assert "ALLOWED" not in outcome.stdout, outcome.stdout
  assert outcome.stdout.count("blocked") == 11 and "inside ok" in outcome.stdout
  assert (tmp_path / "victim.txt").read_text() == "precious" and (tmp_path / "keep").is_dir()
  assert not (tmp_path / "new").exists()


def test_os_exit_mid_stage_leaves_a_started_stage():
  source = """
  import os
  from aira_jax.design import records
  t = records.record_start("import")
  records.record_end("import", t, ok=True, metrics={"n": 1})
  records.record_start("train")
  print("training", flush=True)
  os._exit(3)
  """
  outcome = run(source)
  assert outcome.returncode == 3 and outcome.killed is None
  assert [(r["stage"], r["event"]) for r in outcome.records] == [("import", "start"), ("import", "end"),
                                                                   ("train", "start")]
  assert outcome.records[1]["metrics"] == {"n": 1}
  assert outcome.stdout == "training\n"


def test_records_survive_a_crash():
  source = """
  from aira_jax.design import records
  records.record_start("compile")
  import ctypes; ctypes.string_at(0)
  """
  outcome = run(source)
  assert outcome.killed == "signal SIGSEGV"
  assert [r["stage"] for r in outcome.records] == ["compile"]


@pytest.mark.parametrize("name", ["../x.py", "/etc/x.py", "a/../../x.py", "", "a//b.py", "./x.py",
                                  "records.jsonl", "stdout.txt"])
def test_bad_file_names_are_rejected(name):
  with pytest.raises(ValueError):
    run_sandboxed("cand", [], files={"cand.py": "pass", name: "x"}, limits=FAST)


def test_bad_module_name_is_rejected():
  with pytest.raises(ValueError):
    run_sandboxed("-c", [], files={"cand.py": "pass"}, limits=FAST)


def test_files_in_subfolders_are_importable():
  outcome = run_sandboxed("pkg.main", [], files={"pkg/__init__.py": "", "pkg/main.py": "print(__name__)"},
                          limits=FAST)
  assert outcome.stdout == "__main__\n"


def test_output_flood_is_trimmed():
  source = """
  import sys
  sys.stdout.write("x" * 10_000_000 + "THE END")
  sys.stderr.write("START" + "e" * 3_000_000)
  """
  outcome = run(source, limits=SandboxLimits(timeout_s=30, output_chars=5000))
  assert outcome.ok
  assert len(outcome.stdout) <= 5000 and outcome.stdout.endswith("THE END")
  assert "10000007 bytes" in outcome.stdout
  assert len(outcome.stderr) <= 5000 and outcome.stderr.startswith("START")


def test_file_size_limit():
  outcome = run("open('big', 'wb').write(b'x' * 3 * 2**20)", limits=SandboxLimits(timeout_s=30, max_file_mb=1))
  assert outcome.killed == "file size"


def test_workdir_removed_unless_kept(tmp_path):
  source = "import os; print(os.getcwd())"
  removed = run(source)
  assert removed.workdir is None and not os.path.exists(removed.stdout.strip())
  kept = run(source, keep_workdir=True)
  try:
    assert kept.workdir is not None and kept.workdir.is_dir() and str(kept.workdir) == kept.stdout.strip()
    assert (kept.workdir / "cand.py").exists()
  finally:
    shutil.rmtree(kept.workdir)
  given = run(source, workdir=tmp_path / "given")
  assert given.workdir == (tmp_path / "given").resolve() and given.workdir.is_dir()


def test_jax_runs_under_default_limits():
  source = """
  import jax, jax.numpy as jnp
  from aira_jax.design import records
  t = records.record_start("compile")
  y = jax.jit(lambda x: x + 1)(jnp.ones(3))
  g = jax.grad(lambda x: (x * x).sum())(jnp.ones((8, 8)))
  records.record_end("compile", t, ok=True, metrics={"y": float(y.sum()), "g": float(g.sum())})
  """
  outcome = run(source, limits=SandboxLimits(timeout_s=120))
  assert outcome.ok, outcome.stderr
  assert outcome.records[-1]["metrics"] == {"y": 6.0, "g": 128.0}
  assert not outcome.blocked


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"memory_mb": -1}, {"memory_kind": "rss"},
                                    {"output_chars": 10}])
def test_bad_limits_are_rejected(kwargs):
  with pytest.raises(ValueError):
    SandboxLimits(**kwargs)
