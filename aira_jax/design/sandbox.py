"""Runs agent-written code in a fresh, limited, isolated subprocess and reports how it ended.

`run_sandboxed("cand", args, files={"cand.py": source}, limits=SandboxLimits(), isolation="auto")` writes
`files` into a working directory and runs `python -s -B -m aira_jax.design.guarded cand args...` there:

- isolation "bwrap" (`aira_jax.design.bubblewrap`): own PID, network, mount, user, IPC and UTS namespaces, no
  capabilities, only the workdir writable, a private /tmp, the Python installation, this project's packages and
  the trusted data read-only, nothing else of the file system (the user's home, the parent's working
  directory, other runs); a seccomp filter refuses new processes (`aira_jax.design.seccomp`; threads only);
  "process": the same child without namespaces; "auto": bwrap when it works here (`resolve_isolation`);
- a new session; at the wall-clock timeout, and after every run, the whole group is SIGKILLed (under bwrap the
  kernel then kills everything in the PID namespace);
- resource limits, applied by the child (guarded.py) before it imports anything heavy: memory (RLIMIT_DATA by
  default), CPU seconds (a backstop), file size, no core dumps (not a `preexec_fn`: Python code between fork
  and exec in a multithreaded parent such as JAX can deadlock);
- an environment built from scratch: PATH, HOME and TMPDIR inside the workdir, PYTHONPATH = this tree,
  PYTHONHASHSEED=0, JAX_PLATFORMS if the parent has it, the records file, the results channel, and what the
  caller passes in `extra_env` (names that look like secrets are refused);
- stdout and stderr go to files, read back as head + tail through the parent's own descriptors; the records
  file and reserved names are removed before each run, so a reused workdir cannot redirect the parent;
- the results channel (`consume`, `aira_jax.design.channel`): a pipe on which the child sends arrays, read in
  the parent while the child runs. The design tasks send predictions on it; their metrics are computed in the
  parent (`aira_jax.design.scoring`), never from the child's records or output;
- the audit hook of `aira_jax.design.guard`: readable errors for careless code (writes outside, processes,
  network), a first line only.

Threat model (what a determined candidate can and cannot do; tests/aira_jax/design/redteam_test.py tries each):

| threat                                              | bwrap                      | process only                 |
|-----------------------------------------------------|----------------------------|------------------------------|
| read API keys of the parent (/proc/<pid>/environ)   | stopped: own PID namespace | NOT stopped (redaction only) |
| read files in the home / parent's directory         | stopped: not mounted       | NOT stopped                  |
| read held-out labels / validation text              | stopped: not in the child  | labels: the same; corpus: NO |
| forge its metric (records, stdout, patched scorer)  | stopped: parent scores     | stopped: parent scores       |
| train longer than the budget                        | bounded: phase kill time   | bounded: phase kill time     |
| write outside its directory (dir_fd, ctypes)        | stopped: read-only mounts  | hook only; native code escapes |
| start processes / orphans / fork bombs              | stopped: seccomp, PID namespace | hook only; setsid escapes |
| network (loopback servers, internet)                | stopped: own network namespace | hook only; ctypes escapes |
| memory, CPU time, file size                         | rlimits                    | rlimits                      |
| crash (segfault, abort)                             | reported as a failed stage | the same                     |
| secrets in what it prints                           | redacted (plain values)    | redacted (plain values)      |

Not covered in either mode: GPU memory and CPU/disk contention with other processes; kernel exploits
(bwrap shares the host kernel: use a VM or gVisor for code you suspect of those); a candidate that computes
its predictions by hand-written code instead of a learned model (e.g. evaluating ListOps expressions) - the
code is kept for review; bwrap on GPU/TPU hosts (device nodes are passed through; not yet run there).

Memory: a JAX process reserves far more address space than it touches (thread stacks, malloc arenas; it grows
with the number of cores), so an RLIMIT_AS near its real use kills it with a bare SIGSEGV or SIGABRT
`std::bad_alloc`, not recognisable as running out of memory. RLIMIT_DATA counts only writable private memory
(thread stacks included: too low a limit makes XLA abort with "pthread_create() failed"). So the default is
RLIMIT_DATA at 8192 MiB (`tests/aira_jax/design/sandbox_test.py` runs a jit and a grad under the default
limits); `memory_kind="address"` selects RLIMIT_AS (CUDA reserves huge address ranges, so expect it to fail on
GPUs; not tried). GPU memory is not limited by either. RLIMIT_NPROC is not used: it counts every process and
thread of the user, not just the child's (and does not bind root).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import threading
from collections.abc import Callable

import aira_jax
from aira_jax.design import seccomp
from aira_jax.design.bubblewrap import bwrap_argv, bwrap_problem, gpu_devices
from aira_jax.faults import check_stop, stop_requested
from aira_jax.design.channel import RESULTS_FD_ENV, ArrayReader, ChannelError
from aira_jax.design.guard import BLOCK_PREFIX
from aira_jax.design.records import RECORDS_ENV, read_records

RECORDS_FILE, STDOUT_FILE, STDERR_FILE, TMP_DIR = "records.jsonl", "stdout.txt", "stderr.txt", "tmp"
COPIED_ENV = ("JAX_PLATFORMS",)
"""The only variables copied from the parent's environment."""
_RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "PYTHONPATH", RECORDS_ENV, "AIRA_SANDBOX_RLIMITS",
                           RESULTS_FD_ENV})
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|COOKIE|PROXY|SESSION", re.IGNORECASE)
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_EXIT_MEMORY_MARKERS = ("MemoryError", "std::bad_alloc", "Memory allocation still failed", "RESOURCE_EXHAUSTED")
_CRASH_MEMORY_MARKERS = _EXIT_MEMORY_MARKERS + ("Cannot allocate memory", "Resource temporarily unavailable",
                                                "out of memory", "pthread_create() failed")
_PACKAGE_ROOT = str(pathlib.Path(aira_jax.__file__).resolve().parent.parent)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SandboxLimits:
  """Limits of one sandboxed run.

  Attributes:
    timeout_s: wall-clock seconds before the process group is killed.
    memory_mb: memory limit in MiB, None for none (see the module docstring for what JAX needs).
    memory_kind: "data" (RLIMIT_DATA: writable private memory, heap and anonymous mmap) or "address"
      (RLIMIT_AS: all address space, reserved included).
    cpu_s: RLIMIT_CPU seconds; None = timeout_s x cores + 5, a backstop if the parent dies.
    max_file_mb: largest file the child may write (RLIMIT_FSIZE; stdout/stderr count), None for none.
    output_chars: characters kept of stdout and of stderr (head and tail).
  """
  timeout_s: float = 600.0
  memory_mb: int | None = 8192
  memory_kind: str = "data"
  cpu_s: int | None = None
  max_file_mb: int | None = 1024
  output_chars: int = 20000

  def __post_init__(self):
    sizes = {"memory_mb": self.memory_mb, "cpu_s": self.cpu_s, "max_file_mb": self.max_file_mb}
    bad = [f"{name}={value!r}" for name, value in sizes.items() if value is not None and not value > 0]
    bad += [] if isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0 else ["timeout_s"]
    bad += [] if self.memory_kind in ("data", "address") else [f"memory_kind={self.memory_kind!r}"]
    bad += [] if self.output_chars >= 64 else ["output_chars"]
    if bad:
      raise ValueError(f"bad SandboxLimits: {', '.join(bad)} (numbers > 0 or None, timeout_s > 0, "
                       "output_chars >= 64, memory_kind 'data' or 'address')")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SandboxOutcome:
  """How a sandboxed run ended.

  Attributes:
    returncode: the exit status; negative = killed by that signal.
    killed: None (exited by itself, success or an ordinary error), "timeout", "memory" (MemoryError, an
      allocation failure, or a SIGKILL the sandbox did not send, i.e. the OOM killer), "cpu time" (SIGXCPU),
      "file size" (RLIMIT_FSIZE: EFBIG in Python, SIGXFSZ in native code), or "signal NAME" for any other
      signal ("signal SIGSEGV", "signal SIGABRT").
    seconds: wall-clock duration.
    stdout, stderr: head and tail of the output, at most `output_chars` each.
    records: what the child wrote with `aira_jax.design.records`, in order.
    workdir: the working directory, or None when it was removed.
    isolation: "bwrap" or "process" (what protected this run).
    consumed: what the `consume` callback returned (None without one, or when it failed).
    consume_error: why reading the results channel failed (the child sent nothing, too little, the wrong
      shape or non-finite values), or None.
  """
  returncode: int
  killed: str | None
  seconds: float
  stdout: str
  stderr: str
  records: list[dict[str, Any]]
  workdir: pathlib.Path | None
  isolation: str = "process"
  consumed: Any = None
  consume_error: str | None = None

  @property
  def ok(self) -> bool:
    """The child exited with status 0."""
    return self.returncode == 0 and self.killed is None

  @property
  def blocked(self) -> list[str]:
    """The guard's "aira sandbox: blocked ..." lines in stderr."""
    return [line for line in self.stderr.splitlines() if line.startswith(BLOCK_PREFIX)]


def _check_name(name: str) -> list[str]:
  parts = name.split("/")
  if (not name or "\\" in name or "\0" in name or any(part in ("", ".", "..") for part in parts)
      or (len(parts) == 1 and name in (RECORDS_FILE, STDOUT_FILE, STDERR_FILE, TMP_DIR))):
    raise ValueError(f"file name {name!r} must be a plain relative path (no '..', '.', '/' prefix, or "
                     f"reserved name)")
  return parts


def _child_env(workdir: pathlib.Path, extra_env: dict[str, str] | None) -> dict[str, str]:
  env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir / TMP_DIR),
         "PYTHONPATH": _PACKAGE_ROOT, "PYTHONHASHSEED": "0", RECORDS_ENV: str(workdir / RECORDS_FILE)}
  env.update({name: os.environ[name] for name in COPIED_ENV if name in os.environ})
  for name, value in (extra_env or {}).items():
    if name in _RESERVED_ENV or _SECRET_NAME.search(name):
      raise ValueError(f"extra_env may not set {name!r} (reserved, or looks like a secret)")
    env[str(name)] = str(value)
  return env


RLIMITS_ENV = "AIRA_SANDBOX_RLIMITS"
"""Resource limits for the child: "resource,soft,hard" triples joined by ";" (applied by guarded.py)."""


def _rlimits(limits: SandboxLimits) -> list[tuple[int, int, int]]:
  """(resource, soft, hard) triples, computed in the parent so the child only calls setrlimit."""
  mib = 1 << 20
  cpu_s = limits.cpu_s
  if cpu_s is None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_s = math.ceil(limits.timeout_s * cores) + 5
  wanted = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_CPU, cpu_s, cpu_s + 5)]
  if limits.memory_mb is not None:
    kind = resource.RLIMIT_DATA if limits.memory_kind == "data" else resource.RLIMIT_AS
    wanted.append((kind, limits.memory_mb * mib, limits.memory_mb * mib))
  if limits.max_file_mb is not None:
    wanted.append((resource.RLIMIT_FSIZE, limits.max_file_mb * mib, limits.max_file_mb * mib))
  ceiling = {kind: resource.getrlimit(kind)[1] for kind, _, _ in wanted}  # a hard limit cannot be raised
  return [(kind, soft, hard) if ceiling[kind] == resource.RLIM_INFINITY else
          (kind, min(soft, ceiling[kind]), min(hard, ceiling[kind])) for kind, soft, hard in wanted]


def _read_output(f, limit: int) -> str:
  """Head and tail of the file open as `f` (the parent's own descriptor), at most `limit` characters.

  Like `aira_jax.agents.node.trim_excerpt` (a third head, the rest tail, a marker between) but reads only
  the ends of a large file. Not imported from there: the sandbox stays free of the agents package.
  """
  size = f.seek(0, os.SEEK_END)
  f.seek(0)
  if size <= limit:
    return f.read().decode("utf-8", "replace")
  marker = f"\n... [{size} bytes, trimmed to {limit} chars] ...\n"
  keep = max(limit - len(marker), 0)
  head = f.read(keep // 3).decode("utf-8", "replace")[:keep // 3]
  tail_chars = keep - len(head)
  f.seek(max(size - 4 * tail_chars, 0))
  tail = f.read().decode("utf-8", "replace")[-tail_chars:] if tail_chars else ""
  return head + marker + tail


def _clear(workdir: pathlib.Path, names) -> None:
  """Removes what an earlier run left under `names` (files, links, folders) without following links, so that
  a reused working directory cannot redirect the parent's writes through a planted symlink."""
  for name in names:
    path = workdir.joinpath(*name.split("/"))
    if path.is_symlink() or path.is_file():
      path.unlink()
    elif path.exists():
      shutil.rmtree(path)


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
  """Waits for `proc` without reaping it, SIGKILLs its process group, reaps it; True on timeout. Ctrl-C (the
  stop flag of aira_jax.faults; the child is in its own session, so it gets no SIGINT) kills it too and
  raises Interrupted: an interrupted candidate has no outcome to blame it for."""
  deadline, delay, timed_out = time.monotonic() + timeout_s, 0.002, False
  try:
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
      if stop_requested():
        break
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        timed_out = True
        break
      time.sleep(min(delay, remaining))
      delay = min(2 * delay, 0.05)
  except ChildProcessError:  # someone else's waitpid(-1) reaped it
    pass
  finally:
    try:
      os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
      pass
    proc.wait()
  check_stop()
  return timed_out


def _killed(returncode: int, timed_out: bool, stderr: str) -> str | None:
  if timed_out:
    return "timeout"
  if returncode == 0:
    return None
  if returncode > 0:  # an ordinary exit: only a memory or file-size failure in the last lines counts
    last = stderr[-2000:]
    if any(marker in last for marker in _EXIT_MEMORY_MARKERS):
      return "memory"
    return "file size" if "File too large" in last else None  # Python ignores SIGXFSZ: EFBIG instead
  number = -returncode
  memory = any(marker in stderr for marker in _CRASH_MEMORY_MARKERS)
  if number == signal.SIGKILL or (memory and number in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)):
    return "memory"
  if number in (signal.SIGXCPU, signal.SIGXFSZ):
    return "cpu time" if number == signal.SIGXCPU else "file size"
  try:
    return f"signal {signal.Signals(number).name}"
  except ValueError:
    return f"signal {number}"


ISOLATIONS = ("auto", "bwrap", "process")
CHANNEL_GRACE_S = 10.0
"""Seconds the results reader may take to finish after the child has exited."""


class SandboxUnavailable(RuntimeError):
  """The isolation asked for cannot be had on this machine (e.g. bwrap missing); the message says why."""


def resolve_isolation(setting: str) -> str:
  """"bwrap" or "process" for the setting "auto" | "bwrap" | "process".

  "auto" takes bwrap when it works here (`aira_jax.design.bubblewrap.bwrap_problem`), else the process-only
  sandbox; "bwrap" raises SandboxUnavailable with the reason when it does not work.
  """
  if setting not in ISOLATIONS:
    raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {setting!r}")
  if setting == "process":
    return "process"
  problem = bwrap_problem()
  if problem is None:
    return "bwrap"
  if setting == "bwrap":
    raise SandboxUnavailable(f"sandbox isolation 'bwrap' is not available: {problem}")
  return "process"


def describe_isolation(isolation: str, block_processes: bool = True) -> str:
  """One line for the CLI and the report saying what protected the candidates."""
  if isolation == "bwrap":
    processes = "no new processes (seccomp)" if block_processes else "processes allowed inside"
    return (f"bwrap: own PID, network, mount and user namespaces, cleared environment, {processes}; held-out "
            "labels and the metric stay in the trusted parent")
  return ("process only (bwrap unavailable or not chosen): rlimits, a scrubbed environment and a Python audit "
          "hook. This does NOT protect secrets, files or the host from a determined candidate (native code "
          "escapes the hook); install bubblewrap for real isolation")


def _consume_in_thread(read_fd: int, consume: Callable[[ArrayReader], Any]):
  """Starts a thread that runs `consume` on the channel and then drains it; returns (thread, result dict)."""
  result: dict[str, Any] = {"value": None, "error": None}

  def target():
    with os.fdopen(read_fd, "rb") as stream:
      reader = ArrayReader(stream)
      try:
        result["value"] = consume(reader)
      except ChannelError as e:
        result["error"] = str(e)
      except Exception as e:  # noqa: BLE001 - a scorer bug must not hang the sandbox; reported as such
        result["error"] = f"the trusted scorer failed: {type(e).__name__}: {e}"
      finally:
        reader.drain()

  thread = threading.Thread(target=target, name="sandbox-results", daemon=True)
  thread.start()
  return thread, result


def run_sandboxed(argv_module: str, args: list[str], *, files: dict[str, str | bytes],
                  limits: SandboxLimits = SandboxLimits(), workdir: str | os.PathLike | None = None,
                  keep_workdir: bool = False, extra_env: dict[str, str] | None = None, isolation: str = "auto",
                  data_dirs: tuple[str | os.PathLike, ...] = (), hidden: tuple[str | os.PathLike, ...] = (),
                  block_processes: bool | None = None,
                  consume: Callable[[ArrayReader], Any] | None = None) -> SandboxOutcome:
  """Runs `python -m argv_module *args` under the guard and limits in a working directory holding `files`.

  Args:
    argv_module: a dotted module name importable from the workdir (usually one of `files`).
    args: its command-line arguments.
    files: relative path -> text (or bytes) written into the workdir first.
    limits: see `SandboxLimits`.
    workdir: a directory to use (created if missing, never removed: the caller owns it); default: a fresh
      temporary directory, removed afterwards unless `keep_workdir`.
    extra_env: more environment variables (XLA_FLAGS, CUDA_VISIBLE_DEVICES); secret-looking or reserved
      names raise ValueError.
    isolation: "auto" | "bwrap" | "process" (`resolve_isolation`).
    data_dirs: directories the child may read (bound read-only under bwrap; readable anyway in process mode).
    hidden: paths the child must not see under bwrap (an empty tmpfs covers each).
    block_processes: under bwrap, refuse new processes with seccomp; None = yes unless accelerator device
      nodes are present (XLA's GPU compiler may start ptxas). Process mode relies on the audit hook.
    consume: called in a thread with an `ArrayReader` over the results channel while the child runs; what it
      returns is `SandboxOutcome.consumed`, a ChannelError it raises is `consume_error`.
  Raises:
    ValueError: a bad module name, file name or environment variable name.
    SandboxUnavailable: isolation "bwrap" where bwrap does not work.
  """
  if not _MODULE.match(argv_module):
    raise ValueError(f"argv_module must be a dotted module name, got {argv_module!r}")
  for name in files:
    _check_name(name)
  mode = resolve_isolation(isolation)
  if block_processes is None:
    block_processes = not gpu_devices()
  owned = workdir is None
  work = pathlib.Path(tempfile.mkdtemp(prefix="aira-sandbox-") if owned else workdir).resolve()
  opened: list[int] = []
  try:
    work.mkdir(parents=True, exist_ok=True)
    env = _child_env(work, extra_env)
    _clear(work, (RECORDS_FILE, STDOUT_FILE, STDERR_FILE, TMP_DIR, *files))
    (work / TMP_DIR).mkdir()
    for name, content in files.items():
      path = work.joinpath(*name.split("/"))
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    env[RLIMITS_ENV] = ";".join(f"{kind},{soft},{hard}" for kind, soft, hard in _rlimits(limits))
    argv = [sys.executable, "-s", "-B", "-m", "aira_jax.design.guarded", argv_module, *map(str, args)]
    pass_fds: list[int] = []
    if mode == "bwrap":
      seccomp_fd = None
      if block_processes and seccomp.supported():
        seccomp_fd = os.memfd_create("aira-seccomp", 0)
        opened.append(seccomp_fd)
        os.write(seccomp_fd, seccomp.no_new_processes_filter())
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        pass_fds.append(seccomp_fd)
      argv = bwrap_argv(work, data_dirs=tuple(map(str, data_dirs)), hidden=tuple(map(str, hidden)),
                        seccomp_fd=seccomp_fd) + argv
    consumer = None
    if consume is not None:
      read_fd, write_fd = os.pipe()
      opened.append(write_fd)
      pass_fds.append(write_fd)
      env[RESULTS_FD_ENV] = str(write_fd)
      consumer = _consume_in_thread(read_fd, consume)
    with open(work / STDOUT_FILE, "w+b") as out, open(work / STDERR_FILE, "w+b") as err:
      started = time.perf_counter()
      try:
        proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, close_fds=True, pass_fds=tuple(pass_fds))
      finally:
        while opened:  # the child holds its copies; the channel reaches EOF when the child's end closes
          os.close(opened.pop())
      timed_out = _wait(proc, limits.timeout_s)
      if consumer is not None:
        consumer[0].join(timeout=CHANNEL_GRACE_S)  # a process that escaped the kill may still hold the pipe
        if consumer[0].is_alive():
          consumer[1]["error"] = "the results channel was still held open after the candidate ended"
      seconds = time.perf_counter() - started
      stdout, stderr = _read_output(out, limits.output_chars), _read_output(err, limits.output_chars)
    records_path = work / RECORDS_FILE
    records = [] if records_path.is_symlink() else read_records(records_path)
  finally:
    for fd in opened:
      os.close(fd)
    if owned and not keep_workdir:
      shutil.rmtree(work, ignore_errors=True)
  consumed = consumer[1] if consumer is not None else {"value": None, "error": None}
  returncode = proc.returncode
  if mode == "bwrap" and 128 < returncode < 128 + signal.NSIG:  # bwrap reports a child's signal as 128 + N
    returncode = 128 - returncode
  return SandboxOutcome(returncode=returncode, killed=_killed(returncode, timed_out, stderr),
                        seconds=seconds, stdout=stdout, stderr=stderr, records=records,
                        workdir=work if (keep_workdir or not owned) else None, isolation=mode,
                        consumed=consumed["value"], consume_error=consumed["error"])
