"""A Python audit hook that keeps a sandboxed candidate inside its working directory.

`install(workdir)` adds a `sys.addaudithook` hook (it cannot be removed) that raises `PermissionError` for:

- files: `open` / `os.open` for writing (write, append, create or truncate flags) of a path outside the
  workdir, and `os.remove` (unlink), `os.rename` (replace), `os.rmdir`, `os.mkdir`, `os.symlink` (its new
  name), `os.link`, `os.chmod`, `os.chown`, `os.truncate`, `os.utime`, `os.setxattr`, `os.removexattr`,
  `shutil.rmtree` and `sqlite3.connect` on a path outside it. Paths are resolved (`realpath`, so a symlink
  inside the workdir that points out is caught; a `dir_fd` is resolved through /proc/self/fd). Reading is
  allowed anywhere; `/dev/null` may be written.
- processes: `subprocess.Popen`, `os.system`, `os.exec*`, `os.posix_spawn*`, `os.spawn*`, `os.fork`,
  `os.forkpty`, and `os.kill` / `os.killpg` of any process outside the candidate's own group. A candidate has
  no reason to start processes; `import jax` and jit compilation on CPU start none (the sandbox tests run a
  jit and a grad under this hook and check that nothing was blocked).
- network: every `socket.connect`, `bind`, `sendto`, `sendmsg` and name lookup (`getaddrinfo`,
  `gethostbyname`, `gethostbyaddr`, `getnameinfo`), loopback included: local LLM servers and databases listen
  on loopback, and a candidate needs no network. Creating sockets (and `socketpair`, which asyncio uses)
  stays allowed.

`ctypes.dlopen` is NOT blocked: `import ctypes` itself calls `dlopen(None)` (numpy imports ctypes) and JAX's
CUDA plugin preloads the NVIDIA libraries through ctypes; native code escapes any Python-level hook anyway.

Each distinct block is written once to stderr as `aira sandbox: blocked ...` (with `os.write`, so a
candidate that swallows the exception is still reported). This is a guard against careless code, not an
adversary: see `aira_jax.design.sandbox` for what it does not stop.
"""

from __future__ import annotations

import os
import sys

BLOCK_PREFIX = "aira sandbox: blocked"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ALLOWED_WRITE = frozenset({"/dev/null"})

# event -> indices of (path, dir_fd) argument pairs to check; dir_fd index None when the event has none.
_PATH_EVENTS = {
  "os.remove": ((0, 1),),
  "os.rmdir": ((0, 1),),
  "os.mkdir": ((0, 2),),
  "os.rename": ((0, 2), (1, 3)),
  "os.link": ((0, 2), (1, 3)),
  "os.symlink": ((1, 2),),
  "os.chmod": ((0, 2),),
  "os.chown": ((0, 3),),
  "os.truncate": ((0, None),),
  "os.utime": ((0, 3),),
  "os.setxattr": ((0, None),),
  "os.removexattr": ((0, None),),
  "shutil.rmtree": ((0, 1),),
  "sqlite3.connect": ((0, None),),
}
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                             "os.fork", "os.forkpty"})
_NETWORK_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                             "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                             "socket.getnameinfo"})
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
_KILL_EVENTS = frozenset({"os.kill", "os.killpg"})


def _resolve(path, dir_fd=None) -> str | None:
  """The real absolute path of `path` (str, bytes or PathLike); None for a file descriptor or unknown."""
  if isinstance(path, int) or path is None:
    return None
  try:
    path = os.fsdecode(os.fspath(path))
  except TypeError:
    return None
  if path == ":memory:" or path == "":
    return None
  if not os.path.isabs(path) and isinstance(dir_fd, int):
    try:
      path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    except OSError:
      pass
  return os.path.realpath(path)


def install(workdir: str | os.PathLike) -> None:
  """Adds the audit hook confining writes, processes and network to `workdir`; call once, first thing.

  All state lives in the hook's closure (not module globals a candidate could rebind).
  """
  root = os.path.realpath(os.fspath(workdir))
  prefix = root.rstrip(os.sep) + os.sep
  path_events, process_events, network_events, kill_events = (_PATH_EVENTS, _PROCESS_EVENTS,
                                                              _NETWORK_EVENTS, _KILL_EVENTS)
  address_events = _ADDRESS_EVENTS
  checked = frozenset({"open", *path_events, *process_events, *network_events, *kill_events})
  reported: set[str] = set()
  own_pid, own_pgid = os.getpid(), os.getpgid(0)
  write_flags, allowed_write, resolve, write = _WRITE_FLAGS, _ALLOWED_WRITE, _resolve, os.write

  def outside(path, dir_fd=None) -> str | None:
    real = resolve(path, dir_fd)
    if real is None or real == root or real.startswith(prefix) or real in allowed_write:
      return None
    return real

  def block(what: str) -> None:
    message = f"{BLOCK_PREFIX} {what}"
    if message not in reported:
      reported.add(message)
      try:
        write(2, (message + "\n").encode("utf-8", "replace"))
      except OSError:
        pass
    raise PermissionError(message)

  def hook(event: str, args: tuple) -> None:
    if event not in checked:
      return
    if event == "open":
      flags = args[2] if len(args) > 2 else 0
      if isinstance(flags, int) and flags & write_flags:
        real = outside(args[0])
        if real is not None:
          block(f"open({real!r}, write) outside the working directory {root}")
      return
    spec = path_events.get(event)
    if spec is not None:
      for path_index, fd_index in spec:
        dir_fd = args[fd_index] if fd_index is not None and fd_index < len(args) else None
        real = outside(args[path_index], dir_fd) if path_index < len(args) else None
        if real is not None:
          block(f"{event}({real!r}) outside the working directory {root}")
      return
    if event in kill_events:
      target = args[0] if args else None
      allowed = (own_pid, 0, -own_pgid) if event == "os.kill" else (own_pgid, 0)
      if target not in allowed:
        block(f"{event}({target!r}): only the candidate's own processes may be signalled")
      return
    if event in process_events:
      block(f"{event}: candidates may not start processes")
    elif event in network_events:
      target = args[1] if event in address_events and len(args) > 1 else (args[0] if args else None)
      block(f"{event}({target!r}): candidates have no network")

  sys.addaudithook(hook)
