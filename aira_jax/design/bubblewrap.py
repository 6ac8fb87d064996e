"""The bubblewrap (`bwrap`) command line that puts a sandboxed candidate in its own namespaces.

`bwrap_argv(workdir, ...)` returns the `bwrap ... --` prefix for a command; `bwrap_problem()` says why bwrap
cannot be used on this machine (None when it works; probed once per process). What the candidate then sees:

- a new PID namespace: its own /proc (the parent's environment, command line and memory are not visible), and
  every process it starts dies with it (`--die-with-parent`; when its PID 1 exits the kernel kills the rest);
- a new network namespace with only its own loopback: no route to the host's loopback servers or the internet;
- a new user, IPC, UTS and cgroup namespace, no capabilities (`--cap-drop ALL`, also when the parent is root),
  no further user namespaces (`--disable-userns`), a new session (no terminal injection);
- a file system built from scratch: read-only binds of the system directories (/usr, /lib*, /bin, /sbin), a few
  /etc files the dynamic loader and libc read, the Python installation (base prefix, virtual environment,
  site-packages), this project's packages (`aira_jax`, `pallas_kernels`, at their real paths); a private /tmp
  (tmpfs), the candidate's working directory as the only writable bind, and read-only data directories the
  trusted side prepared. Nothing else of the user's home or the parent's working directory exists inside
  (except what the Python installation itself lives in, e.g. a pyenv under ~/.pyenv). `hidden` paths (for
  instance an installed corpus package holding validation text) are covered by an empty tmpfs;
- optionally a seccomp filter that refuses new processes (`aira_jax.design.seccomp`): threads only.

Accelerators: NVIDIA (/dev/nvidia*) and TPU (/dev/accel*, /dev/vfio) device nodes are passed through when
present, with /sys read-only; this has not been run on a GPU or TPU host yet.
"""

from __future__ import annotations

import functools
import glob
import os
import pathlib
import shutil
import site
import subprocess
import sys

import aira_jax

SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/nsswitch.conf", "/etc/passwd",
             "/etc/group", "/etc/localtime", "/etc/alternatives")
DEVICE_GLOBS = ("/dev/nvidia*", "/dev/accel*", "/dev/vfio")
PROJECT_ROOT = pathlib.Path(aira_jax.__file__).resolve().parent.parent
PROJECT_PACKAGES = ("aira_jax", "pallas_kernels")


def bwrap_path() -> str | None:
  """The bwrap executable, or None."""
  return shutil.which("bwrap", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin:/bin")


def _python_dirs() -> list[str]:
  """Directories the interpreter and its packages live in (real paths, de-duplicated, outer ones only)."""
  candidates = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix,
                os.path.dirname(os.path.realpath(sys.executable)), *site.getsitepackages()}
  user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
  candidates.discard(user_site)
  real = sorted({os.path.realpath(path) for path in candidates if path and os.path.isdir(path)})
  return [path for path in real if not any(path != other and path.startswith(other.rstrip("/") + "/")
                                          for other in real)]


def gpu_devices() -> list[str]:
  """Accelerator device nodes present on this machine (NVIDIA, TPU)."""
  return sorted(path for pattern in DEVICE_GLOBS for path in glob.glob(pattern))


def _bind_tree(flag: str, path: str) -> list[str]:
  """`flag path path`, or a symlink when `path` is one (merged /usr: /bin -> usr/bin)."""
  if os.path.islink(path):
    return ["--symlink", os.readlink(path), path]
  return [flag, path, path] if os.path.exists(path) else []


def bwrap_argv(workdir: str | os.PathLike, *, data_dirs: tuple[str, ...] = (), hidden: tuple[str, ...] = (),
               seccomp_fd: int | None = None, bwrap: str | None = None) -> list[str]:
  """The `bwrap ... --` argument list for a command run in `workdir` (module docstring).

  Args:
    workdir: the candidate's directory (bound read-write at its own path; the command's cwd).
    data_dirs: directories bound read-only at their own paths.
    hidden: paths covered by an empty tmpfs (e.g. a package holding held-out text).
    seccomp_fd: a readable descriptor holding a cBPF program (`--seccomp`), or None.
  """
  workdir = os.path.realpath(workdir)
  argv = [bwrap or bwrap_path() or "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
          "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev",
          "--tmpfs", "/tmp"]
  for path in SYSTEM_DIRS:
    argv += _bind_tree("--ro-bind", path)
  for path in ETC_FILES:
    argv += _bind_tree("--ro-bind", path) if os.path.exists(path) else []
  for path in _python_dirs():
    argv += ["--ro-bind", path, path]
  for name in PROJECT_PACKAGES:
    package = PROJECT_ROOT / name
    if package.is_dir():
      argv += ["--ro-bind", str(package), str(package)]
  devices = gpu_devices()
  if devices:
    argv += ["--ro-bind", "/sys", "/sys"]
    for device in devices:
      argv += ["--dev-bind", device, device]
  for path in data_dirs:
    real = os.path.realpath(path)
    argv += ["--ro-bind", real, real]
  for path in hidden:
    if os.path.exists(path):
      argv += ["--tmpfs", os.path.realpath(path)]
  argv += ["--bind", workdir, workdir, "--chdir", workdir]
  if seccomp_fd is not None:
    argv += ["--seccomp", str(seccomp_fd)]
  return argv + ["--"]


@functools.cache
def bwrap_problem() -> str | None:
  """Why bwrap cannot isolate a candidate here (missing, or namespaces refused), None when it can.

  Runs this interpreter under the full mount plan once and caches the answer for the process."""
  path = bwrap_path()
  if path is None:
    return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
  probe = pathlib.Path(os.path.realpath(os.environ.get("TMPDIR") or "/tmp"))
  try:
    proc = subprocess.run([*bwrap_argv(probe, bwrap=path), sys.executable, "-S", "-c", "print('ok')"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd="/")
  except (OSError, subprocess.TimeoutExpired) as e:
    return f"bwrap failed to start: {e}"
  if proc.returncode != 0 or proc.stdout.strip() != "ok":
    detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return f"bwrap cannot create its namespaces here: {detail}"
  return None
