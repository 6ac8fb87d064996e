"""Command-line plumbing shared by `python -m aira_jax.compose` and `python -m aira_jax.design`.

Both take `[COMMAND] [RUN_DIR] [key=value ...] [--config FILE] [--resume RUN_DIR] [--quiet]`, with "run" as the
default command, so `python -m aira_jax.design search.task=lra-listops` works as well as
`python -m aira_jax.design run ...`. Options and overrides may come in any order.

`CliRun` runs a command's body and turns what goes wrong into short messages and an exit status: a config
error is one line (2); Ctrl-C writes the report marked interrupted and prints one line with the run directory
and the exact resume command (130; a second Ctrl-C prints it and exits at once); a crashed agent, an
evaluation lost to an infrastructure fault or an InfrastructureError that stopped a stage is a line each, the
report and the resume command (1).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import sys
from collections.abc import Callable
from typing import Literal

from aira_jax.faults import InfrastructureError, stop_on_ctrl_c

_TAKES_VALUE = {"--config", "--resume"}

PolicyName = Literal["one_shot", "greedy", "mcts", "evolutionary"]
"""An agent's `policy` in either pipeline's config: the names of aira_jax.agents.policies.POLICIES (a test keeps
them equal), written out here so that config modules need not import the agents."""


EXECUTOR_HELP = ("where evaluations run: here (executor.backend=local, the default) or on Ray workers:\n"
                 "  executor.backend=ray executor.address=local|auto|HOST:PORT 'executor.resources={GPU: 1}' "
                 "executor.max_concurrent=N\n  (README.md, \"Running on a cluster\"; needs the [ray] extra)\n\n")


def add_run_arguments(parser: argparse.ArgumentParser, commands: tuple[str, ...]) -> None:
  """The positional command, run directory and overrides, and the --config / --resume / --quiet options."""
  parser.add_argument("command", nargs="?", default=commands[0], choices=commands,
                      help=f"what to do (default: {commands[0]})")
  parser.add_argument("target", nargs="?", help="for report: the run directory")
  parser.add_argument("overrides", nargs="*", help="key=value config overrides (values are YAML)")
  parser.add_argument("--config", help="a YAML config (see experiments/)")
  parser.add_argument("--resume", metavar="RUN_DIR",
                      help="continue the run in RUN_DIR (its saved config plus overrides); finished work is not "
                           "repeated")
  parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _with_command(argv: list[str], commands: tuple[str, ...]) -> list[str]:
  """Inserts the default command when the first positional argument is not a command (an override)."""
  skip = False
  for i, arg in enumerate(argv):
    if skip:
      skip = False
    elif arg in _TAKES_VALUE:
      skip = True
    elif not arg.startswith("-"):
      return argv if arg in commands else [*argv[:i], commands[0], *argv[i:]]
  return argv


def parse_run_args(parser: argparse.ArgumentParser, commands: tuple[str, ...], argv: list[str] | None):
  """(args, target run directory or None, overrides); argparse puts a first override into `target`."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser.parse_intermixed_args(_with_command(argv, commands))
  args.commands = commands
  overrides, target = list(args.overrides), args.target
  if target is not None and "=" in target:
    overrides.insert(0, target)
    target = None
  return args, target, overrides


def progress_stream(quiet: bool):
  """Where progress lines go: stderr, or nowhere with --quiet."""
  import io
  return io.StringIO() if quiet else sys.stderr


class CliRun:
  """One command of a pipeline's CLI (module docstring). The body sets, as it goes: `command`, `root` once the
  run directory exists, `stage` (what Ctrl-C would interrupt) and `write_report(interrupted_stage_or_None)`."""

  def __init__(self, prog: str, command: str = "run"):
    self.prog, self.command = prog, command
    self.root: pathlib.Path | None = None
    self.stage: str | None = None
    self.write_report: Callable[[str | None], object] | None = None

  def resume_command(self) -> str:
    return f"python -m {self.prog} {self.command} --resume {shlex.quote(str(self.root))}"

  def interrupted_line(self) -> str:
    if self.root is None:
      return "interrupted before the run directory was made; nothing to resume"
    return f"interrupted; finished work is saved in {self.root}. Resume with: {self.resume_command()}"

  def run(self, body: Callable[[], int]) -> int:
    """Runs `body()` (returning an exit status) under `stop_on_ctrl_c`; see the module docstring."""
    from aira_jax.config_io import ConfigError
    with stop_on_ctrl_c(last_words=self.interrupted_line):
      try:
        return body()
      except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
      except KeyboardInterrupt:  # aira_jax.faults.Interrupted: a stage stopped on Ctrl-C
        self._report(self.stage or "startup")
        print(self.interrupted_line(), file=sys.stderr)
        return 130
      except InfrastructureError as e:
        return self.failed([f"error: {self.stage or 'the run'} stopped: {e}"])

  def failed(self, lines: list[str]) -> int:
    """Writes the report, prints `lines` and how to resume; exit status 1."""
    self._report(None)
    for line in lines:
      print(line, file=sys.stderr)
    if self.root is not None:
      print(f"finished work is saved in {self.root}; after fixing the cause, resume with: {self.resume_command()}",
            file=sys.stderr)
    return 1

  def _report(self, interrupted: str | None) -> None:
    """Writes the run's report, if there is a run; a report that fails is one line, not a traceback."""
    if self.root is None or self.write_report is None:
      return
    try:
      self.write_report(interrupted)
    except Exception as e:  # noqa: BLE001  (the run's own outcome matters more than its report)
      print(f"the report could not be written: {type(e).__name__}: {e}", file=sys.stderr)


def report_only(cli: CliRun, api, args: argparse.Namespace, target: str | None) -> bool:
  """The start every command shares: Ctrl-C while importing stops here (before any run directory); the
  `report` command is carried out at once (True: nothing else to do)."""
  from aira_jax.faults import check_stop
  check_stop()
  cli.command = args.command
  if args.command != "report":
    return False
  print(api.report(report_target(target, args.resume, cli.prog)))
  return True


def run_search_stage(cli: CliRun, api, config, files, stream) -> int | None:
  """Runs the search stage; raises Interrupted when Ctrl-C stopped it; returns `cli.failed`'s exit status
  when an agent crashed or evaluations were lost to infrastructure faults, None for a clean search."""
  from aira_jax.faults import Interrupted
  result = api.search(config, files, stream=stream)
  if result.ensemble.interrupted:
    raise Interrupted("search")
  problems = search_fault_lines(result.ensemble)
  return cli.failed(problems) if problems else None


def search_fault_lines(report) -> list[str]:
  """One line per agent that crashed (which, how often, why) and one for evaluations lost to infrastructure
  faults, from an `EnsembleReport`; empty for a clean search."""
  from aira_jax.agents.session import last_line
  lines = []
  for agent in dict.fromkeys(agent for agent, _ in report.crashes):
    traces = [trace for name, trace in report.crashes if name == agent]
    outcome = "and stopped" if report.stop_reasons.get(agent, "").startswith("crashed") else "(restarted)"
    lines.append(f"error: agent {agent} crashed {len(traces)} time(s) {outcome}: {last_line(traces[-1])}")
  if report.infrastructure_failures:
    lines.append(f"error: {len(report.infrastructure_failures)} evaluation(s) failed for infrastructure reasons "
                 f"(not the candidates' fault, not recorded as their results): "
                 f"{last_line(report.infrastructure_failures[-1][1])}")
  return lines


def exit_process(status: int) -> None:
  """Ends `python -m ...` with `status`. After Ctrl-C (130) without waiting for evaluation threads still
  inside a compilation: the journal and the store are already written."""
  if status == 130:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
  sys.exit(status)


def report_target(target: str | None, resume: str | None, prog: str) -> str:
  """The run directory the report command was given; ConfigError when none."""
  from aira_jax.config_io import ConfigError
  run_dir = target or resume
  if run_dir is None:
    raise ConfigError(f"report needs the run directory: python -m {prog} report runs/<id>")
  return run_dir


def open_run_from_args(api, args: argparse.Namespace, target: str | None, overrides: list[str], **options):
  """(config, files) of the run a search works on (a new one from --config and the overrides, or --resume's),
  via `api.open_run(..., **options)`; prints its directory. ConfigError for a stray positional argument."""
  from aira_jax.config_io import ConfigError
  target = target if target is not None else next((o for o in overrides if "=" not in o), None)
  if target is not None:
    commands = getattr(args, "commands", None)
    known = f"; commands: {', '.join(commands)}" if commands else ""
    raise ConfigError(f"unexpected argument {target!r}: overrides look like key=value{known} (see --help)")
  config, files = api.open_run(config_path=args.config, overrides=overrides, resume=args.resume, **options)
  print(f"run directory: {files.root}", file=sys.stderr)
  return config, files


def check_agents(agents, where: str = "search.agents") -> None:
  """Agent configs (name, policy, policy_options, llm, llm_options) shared by compose and design: distinct
  names, valid policy options, a parseable LLM spec of a known backend, valid LLM options; ConfigError naming
  the agent. (The policy's name is a `PolicyName`, checked by config_io with the other choices.)"""
  from aira_jax.agents.policies import make_policy
  from aira_jax.config_io import ConfigError
  if not agents:
    raise ConfigError(f"{where}: give at least one agent")
  names = [a.name for a in agents]
  if len(set(names)) != len(names):
    raise ConfigError(f"{where}: names must be distinct, got {names}")
  for agent in agents:
    try:
      make_policy(agent.policy, **dict(agent.policy_options))
    except ValueError as e:
      raise ConfigError(f"{where}[{agent.name}].policy_options: {e}") from None
    options = dict(getattr(agent, "llm_options", None) or {})
    if agent.llm is None and options:
      raise ConfigError(f"{where}[{agent.name}].llm_options: set only for an LLM agent (llm is not set)")
    if agent.llm is not None:
      from aira_jax.llm.registry import check_llm_options, parse_spec
      try:
        parse_spec(agent.llm)
        check_llm_options(agent.llm, options)
      except ValueError as e:
        raise ConfigError(f"{where}[{agent.name}]: {e}") from None


def check_budgets(search) -> None:
  """The search budgets of either pipeline: at least one given, each positive; ConfigError naming the key."""
  from aira_jax.config_io import ConfigError
  if search.steps_per_agent is None and search.wall_clock_s is None and search.max_llm_tokens is None:
    raise ConfigError("search: give at least one budget (steps_per_agent, wall_clock_s or max_llm_tokens) so the "
                      "search ends")
  for key, value in (("steps_per_agent", search.steps_per_agent), ("wall_clock_s", search.wall_clock_s),
                     ("max_llm_tokens", search.max_llm_tokens)):
    if value is not None and not value > 0:
      raise ConfigError(f"search.{key} must be positive (or null for no limit), got {value!r}")


def check_llm_endpoints(agents, where: str = "search.agents") -> None:
  """One cheap call per distinct LLM endpoint of the agents (`probe`: GET /models for OpenAI-compatible
  servers, models.get for Gemini), so an unreachable server or a refused key stops the run before any work;
  ConfigError naming the agent. Scripted agents need nothing."""
  import json

  from aira_jax.config_io import ConfigError
  from aira_jax.llm import make_client
  from aira_jax.llm.base import LLMError
  probed = set()
  for agent in agents:
    if agent.llm is None or agent.llm.startswith("scripted:"):
      continue
    key = (agent.llm, json.dumps(dict(agent.llm_options), sort_keys=True, default=str))
    if key in probed:
      continue
    probed.add(key)
    try:
      make_client(agent.llm, options=agent.llm_options).probe()
    except LLMError as e:
      raise ConfigError(f"{where}[{agent.name}].llm: {agent.llm} is not usable: {e}") from None


def check_agent_resources(agents, where: str = "search.agents") -> None:
  """What the agents need from this machine before a run starts: a scripted agent's replies file, a Gemini
  agent's API key in the environment; ConfigError naming the agent and what to do.

  Kept out of `check_agents` so that a config can be validated (and round-tripped) on another machine."""
  from aira_jax.config_io import ConfigError
  for agent in agents:
    backend, _, target = (agent.llm or "").partition(":")
    if backend == "scripted" and not pathlib.Path(target).is_file():
      raise ConfigError(f"{where}[{agent.name}].llm: the scripted replies file {target!r} does not exist")
    if backend == "gemini":
      from aira_jax.llm.base import LLMError
      from aira_jax.llm.gemini import resolve_api_key
      try:
        resolve_api_key()
      except LLMError as e:
        raise ConfigError(f"{where}[{agent.name}].llm: {e}") from None
