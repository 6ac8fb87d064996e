"""Child entry point of the sandbox: `python -m aira_jax.design.guarded MODULE [args...]`.

Runs in the candidate's working directory (the current directory). It first applies the resource limits the
sandbox passed in `AIRA_SANDBOX_RLIMITS` ("resource,soft,hard" triples joined by ";"), then turns on
`faulthandler` (a crash in
native code still leaves a Python traceback in stderr), installs the audit hook of `aira_jax.design.guard`
confined to the current directory, then runs `MODULE` as `__main__` with `sys.argv = [MODULE, *args]`, the
way `python -m MODULE args...` would (`runpy` then replaces `sys.argv[0]` with the module's file). An
exception in the candidate ends the process with status 1 and its traceback in stderr; `SystemExit` keeps
its code.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import runpy
import sys

from aira_jax.design import guard


def apply_rlimits(text: str) -> None:
  """Sets each "resource,soft,hard" limit of `text` (";"-separated) on this process."""
  for triple in filter(None, text.split(";")):
    kind, soft, hard = (int(v) for v in triple.split(","))
    resource.setrlimit(kind, (soft, hard))


def main(argv: list[str] | None = None) -> None:
  """Guards this process, then runs `argv[0]` (a module importable from the current directory)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0].startswith("-"):
    sys.stderr.write("usage: python -m aira_jax.design.guarded MODULE [args...]\n")
    raise SystemExit(2)
  apply_rlimits(os.environ.get("AIRA_SANDBOX_RLIMITS", ""))
  module, args = argv[0], argv[1:]
  workdir = os.getcwd()
  if sys.path[:1] != [workdir]:
    sys.path.insert(0, workdir)
  faulthandler.enable()
  guard.install(workdir=workdir)
  sys.argv = [module, *args]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
