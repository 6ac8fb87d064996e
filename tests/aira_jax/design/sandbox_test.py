"""Tests of the design sandbox: limits, the scrubbed environment, the guard, records, output handling, the
results channel and bubblewrap isolation.

Candidates are tiny modules written as `files`; only `test_jax_runs_under_default_limits` imports JAX. Tests that
hold in both isolations run under each (`isolation` fixture); bwrap cases skip where bwrap does not work.
"""

import os
import shutil
import socket
import textwrap
import threading
import time

import pytest

from aira_jax.design import records
from aira_jax.design.bubblewrap import bwrap_problem
from aira_jax.design.sandbox import (SandboxLimits, SandboxOutcome, SandboxUnavailable, resolve_isolation,
                                     run_sandboxed)

from aira_jax.faults import Interrupted, request_stop, stop_on_ctrl_c

FAST = SandboxLimits(timeout_s=30, memory_mb=1024)
NEEDS_BWRAP = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")


@pytest.fixture(params=["process", pytest.param("bwrap", marks=NEEDS_BWRAP)])
def isolation(request) -> str:
  return request.param


def run(source: str, args=(), limits: SandboxLimits = FAST, isolation: str = "process",
        **kwargs) -> SandboxOutcome:
  return run_sandboxed("cand", [str(a) for a in args], files={"cand.py": textwrap.dedent(source)},
                       limits=limits, isolation=isolation, **kwargs)


def test_success_reports_output_and_argv(isolation):
  outcome = run(isolation=isolation, source="import sys; print('hello', sys.argv[1:])", args=["a", "b"])
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


def test_starting_a_process_is_blocked(isolation):
  outcome = run(isolation=isolation, source="import subprocess; subprocess.Popen(['sleep', '100'])")
  assert outcome.returncode == 1 and outcome.killed is None
  assert "PermissionError" in outcome.stderr
  assert any("subprocess.Popen" in line for line in outcome.blocked)


def test_huge_allocation_fails_as_memory(isolation):
  outcome = run(isolation=isolation, source="x = bytearray(10**11)",
                limits=SandboxLimits(timeout_s=30, memory_mb=512))
  assert outcome.killed == "memory"
  assert "MemoryError" in outcome.stderr


def test_growing_allocation_fails_as_memory(isolation):
  source = """
  chunks = []
  while True:
    chunks.append(bytearray(50 * 2**20))
  """
  outcome = run(isolation=isolation, source=source, limits=SandboxLimits(timeout_s=30, memory_mb=300))
  assert outcome.killed == "memory"


@pytest.mark.parametrize("source, killed", [("import ctypes; ctypes.string_at(0)", "signal SIGSEGV"),
                                            ("import os; os.abort()", "signal SIGABRT")])
def test_interpreter_crash_is_decoded(source, killed, isolation):
  outcome = run(source, isolation=isolation)
  assert outcome.killed == killed
  assert "Fatal Python error" in outcome.stderr  # faulthandler's traceback


def test_environment_is_scrubbed(monkeypatch, isolation):
  secrets = {"GOOGLE_API_KEY": "secret-google-123", "OPENAI_API_KEY": "secret-openai-456",
             "AWS_SECRET_ACCESS_KEY": "secret-aws-789", "HF_TOKEN": "secret-hf-000",
             "HTTPS_PROXY": "http://secret-proxy:3128"}
  for name, value in secrets.items():
    monkeypatch.setenv(name, value)
  outcome = run("import os; print(dict(os.environ))", isolation=isolation)
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


def test_os_exit_mid_stage_leaves_a_started_stage(isolation):
  source = """
  import os
  from aira_jax.design import records
  t = records.record_start("import")
  records.record_end("import", t, ok=True, metrics={"n": 1})
  records.record_start("train")
  print("training", flush=True)
  os._exit(3)
  """
  outcome = run(isolation=isolation, source=source)
  assert outcome.returncode == 3 and outcome.killed is None
  assert [(r["stage"], r["event"]) for r in outcome.records] == [("import", "start"), ("import", "end"),
                                                                   ("train", "start")]
  assert outcome.records[1]["metrics"] == {"n": 1}
  assert outcome.stdout == "training\n"


def test_records_survive_a_crash(isolation):
  source = """
  from aira_jax.design import records
  records.record_start("compile")
  import ctypes; ctypes.string_at(0)
  """
  outcome = run(isolation=isolation, source=source)
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


def test_output_flood_is_trimmed(isolation):
  source = """
  import sys
  sys.stdout.write("x" * 10_000_000 + "THE END")
  sys.stderr.write("START" + "e" * 3_000_000)
  """
  outcome = run(isolation=isolation, source=source, limits=SandboxLimits(timeout_s=30, output_chars=5000))
  assert outcome.ok
  assert len(outcome.stdout) <= 5000 and outcome.stdout.endswith("THE END")
  assert "10000007 bytes" in outcome.stdout
  assert len(outcome.stderr) <= 5000 and outcome.stderr.startswith("START")


def test_file_size_limit(isolation):
  outcome = run(isolation=isolation, source="open('big', 'wb').write(b'x' * 3 * 2**20)",
                limits=SandboxLimits(timeout_s=30, max_file_mb=1))
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


def test_jax_runs_under_default_limits(isolation):
  source = """
  import jax, jax.numpy as jnp
  from aira_jax.design import records
  t = records.record_start("compile")
  y = jax.jit(lambda x: x + 1)(jnp.ones(3))
  g = jax.grad(lambda x: (x * x).sum())(jnp.ones((8, 8)))
  records.record_end("compile", t, ok=True, metrics={"y": float(y.sum()), "g": float(g.sum())})
  """
  outcome = run(isolation=isolation, source=source, limits=SandboxLimits(timeout_s=120))
  assert outcome.ok, outcome.stderr
  assert outcome.records[-1]["metrics"] == {"y": 6.0, "g": 128.0}
  assert not outcome.blocked


def test_ctrl_c_kills_the_candidate_and_raises_interrupted(isolation):
  # The candidate runs in its own session, so a terminal's Ctrl-C never reaches it: the parent's stop flag
  # ends it, and there is no outcome to blame the candidate for.
  token = f"ctrl-c-{os.getpid()}-{time.time_ns()}"
  timer = threading.Timer(1.0, request_stop)
  with stop_on_ctrl_c():
    timer.start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
      run("import time\ntime.sleep(60)\n", args=[token], isolation=isolation)
  assert time.monotonic() - started < 10
  _assert_gone_soon(token)


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"memory_mb": -1}, {"memory_kind": "rss"},
                                    {"output_chars": 10}])
def test_bad_limits_are_rejected(kwargs):
  with pytest.raises(ValueError):
    SandboxLimits(**kwargs)


SEND = """
import sys
import numpy as np
from aira_jax.design.channel import send_array
for shape in sys.argv[1:]:
  send_array(np.arange(int(shape), dtype=np.float64).reshape(1, -1))
"""


def _read_two(reader):
  return [reader.read("first", (1, 3)), reader.read("second", (1, 2))]


def test_results_channel_round_trip(isolation):
  outcome = run(SEND, args=[3, 2], isolation=isolation, consume=_read_two)
  assert outcome.ok and outcome.consume_error is None
  assert [a.tolist() for a in outcome.consumed] == [[[0.0, 1.0, 2.0]], [[0.0, 1.0]]]
  assert all(a.dtype == "float32" for a in outcome.consumed)


@pytest.mark.parametrize("args, message", [([3], "second: no readable .npy array"),
                                           ([3, 4], "second: expected an array of shape (1, 2), got (1, 4)"),
                                           ([], "first: no readable .npy array")])
def test_results_channel_rejects_missing_or_misshapen_arrays(args, message):
  outcome = run(SEND, args=args, consume=_read_two)
  assert outcome.consumed is None and message in outcome.consume_error


def test_resolve_isolation(monkeypatch):
  with pytest.raises(ValueError, match="isolation must be one of"):
    resolve_isolation("docker")
  assert resolve_isolation("process") == "process"
  monkeypatch.setattr("aira_jax.design.sandbox.bwrap_problem", lambda: "bwrap is not installed")
  assert resolve_isolation("auto") == "process"
  with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
    resolve_isolation("bwrap")


def test_reused_workdir_cannot_redirect_the_parent(tmp_path, isolation):
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  work = tmp_path / "work"
  work.mkdir()
  for name in ("stdout.txt", "stderr.txt", "records.jsonl", "cand.py"):
    (work / name).symlink_to(victim)
  outcome = run("print('hi')", isolation=isolation, workdir=work)
  assert outcome.ok and outcome.stdout == "hi\n"
  assert victim.read_text() == "precious"


@NEEDS_BWRAP
def test_bwrap_hides_the_host(tmp_path, monkeypatch):
  monkeypatch.setenv("GEMINI_API_KEY", "sandbox-test-secret-value")
  (tmp_path / "secret.txt").write_text("sandbox-test-secret-file")
  hidden = tmp_path / "hidden"
  hidden.mkdir()
  (hidden / "validation.txt").write_text("held out")
  data = tmp_path / "data"
  data.mkdir()
  (data / "train.npy").write_text("train")
  source = """
  import ctypes, os, socket, struct, sys
  secret_file, hidden, data, port = sys.argv[1:]
  seen = []
  for pid in os.listdir("/proc"):
    if pid.isdigit():
      try:
        seen.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
      except OSError:
        pass
  print("pids", sum(p.isdigit() for p in os.listdir("/proc")))
  print("secret_env", any("sandbox-test-secret-value" in text for text in seen))
  print("secret_file", os.path.exists(secret_file))
  print("hidden", os.listdir(hidden))
  print("data", open(os.path.join(data, "train.npy")).read())
  libc = ctypes.CDLL(None, use_errno=True)
  fd = libc.open(os.path.join(data, "x").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
  print("data_write", fd, os.strerror(ctypes.get_errno()))
  print("fork", libc.fork())
  address = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(int(port)), socket.inet_aton("127.0.0.1"))
  print("connect", libc.connect(libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0), address, len(address)))
  """
  listener = socket.socket()
  listener.bind(("127.0.0.1", 0))
  listener.listen(1)
  listener.settimeout(0.5)
  try:
    outcome = run(source, args=[tmp_path / "secret.txt", hidden, data, listener.getsockname()[1]],
                  isolation="bwrap", data_dirs=(data,), hidden=(hidden,))
    with pytest.raises(socket.timeout):
      listener.accept()
  finally:
    listener.close()
  assert outcome.ok, outcome.stderr
  lines = dict(line.split(" ", 1) for line in outcome.stdout.strip().splitlines())
  assert int(lines["pids"]) <= 3  # bwrap's init and the child
  assert lines["secret_env"] == "False" and lines["secret_file"] == "False"
  assert lines["hidden"] == "[]" and lines["data"] == "train"
  assert lines["data_write"].startswith("-1") and "Read-only" in lines["data_write"]
  assert lines["fork"] == "-1"
  assert lines["connect"] == "-1"  # native connect, past the audit hook: no route to the host's loopback
  assert not (data / "x").exists() and outcome.isolation == "bwrap"


def _assert_gone_soon(token: str) -> None:
  """No process holds `token` within 3 s (the kernel tears a killed PID namespace down asynchronously)."""
  for _ in range(100):
    if not _processes_with(token):
      return
    time.sleep(0.03)
  assert not _processes_with(token)


def _processes_with(token: str) -> list[int]:
  """Host pids whose command line holds `token` (zombies excluded)."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        if token.encode() in f.read() and _alive(int(pid)):
          found.append(int(pid))
    except OSError:
      pass
  return found


@NEEDS_BWRAP
def test_bwrap_kills_processes_that_left_the_session(tmp_path):
  # Processes allowed (no seccomp): a native fork + setsid escapes the process group, but not the PID namespace.
  token = f"escape-{os.getpid()}-{time.time_ns()}"
  source = """
  import ctypes, time
  libc = ctypes.CDLL(None)
  if libc.fork() == 0:
    libc.setsid()
    while True:
      time.sleep(0.05)
  print("forked", flush=True)
  """
  outcome = run(source, args=[token], isolation="bwrap", block_processes=False)
  try:
    assert outcome.ok and outcome.stdout == "forked\n"
    _assert_gone_soon(token)
  finally:
    for pid in _processes_with(token):
      os.kill(pid, 9)
