"""`python -m aira_jax.design`: the command line of AIRA-Design (run a search, rewrite a report).

    python -m aira_jax.design                                  # built-in agents on tiny LRA ListOps (offline)
    python -m aira_jax.design search.task=autoresearch search.steps_per_agent=4
    python -m aira_jax.design --config experiments/design/lra_gemini.yaml
    python -m aira_jax.design run --resume runs/20261127-041502 search.steps_per_agent=20
    python -m aira_jax.design report runs/20261127-041502

Exit status: 0 done, 1 an agent crashed or an evaluation failed for infrastructure reasons (one line each,
then the resume command), 2 a usage or configuration error (one line, no run directory), 130 interrupted by
Ctrl-C (the report says so; one line with the resume command; everything finished is saved).
"""

from __future__ import annotations

import argparse

from aira_jax.cli_common import (EXECUTOR_HELP, CliRun, add_run_arguments, open_run_from_args, parse_run_args,
                                 progress_stream, report_only, run_search_stage)
from aira_jax.config_io import choices_help
from aira_jax.design.config import DesignConfig

COMMANDS = ("run", "report")
PROG = "aira_jax.design"


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m aira_jax.design",
      description="AIRA-Design: agents write a sequence-mixing mechanism (model.py, LRA tasks) or a training "
                  "script (train.py, autoresearch); each candidate runs in a sandbox (bubblewrap namespaces when "
                  "available: sandbox.isolation=auto|bwrap|process) through the stages import, interface, "
                  "lowering, compile, numerics, train and predict; the score is computed outside the candidate's "
                  "process, from its predictions.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="commands:\n  run     search (default), then the report\n  report  rewrite RUN_DIR/report.md\n\n"
             "tasks: lra-listops and lra-pathfinder (generated, or search.task_options.path to released files),\n"
             "  lra-text, lra-retrieval and lra-image (search.task_options.path to your IMDb / AAN / CIFAR-10 "
             "data), autoresearch.\noverrides: dotted key=value pairs parsed as YAML, e.g. search.task=autoresearch\n"
             "  'search.agents=[{name: g, policy: greedy, llm: gemini:gemini-2.5-pro, edits: diff, "
             "llm_options: {timeout_s: 60, max_attempts: 3}}]' "
             "sandbox.memory_mb=4096 sandbox.isolation=bwrap\n\n" + EXECUTOR_HELP + "Everything goes to runs/<id>/: "
             "resolved_config.yaml, journal.jsonl, results.sqlite, candidates/<key>/ (code, logs, stage records), "
             f"report.md.\n\nsettings with fixed choices ([] a list of them):\n{choices_help(DesignConfig)}")
  add_run_arguments(parser, COMMANDS)
  return parser


def main(argv: list[str] | None = None) -> int:
  cli = CliRun(PROG)
  return cli.run(lambda: run_command(cli, *parse_run_args(build_parser(), COMMANDS, argv)))


def run_command(cli: CliRun, args: argparse.Namespace, target: str | None, overrides: list[str]) -> int:
  """The body of `main`: one command, with `cli` told the run directory and how to report."""
  from aira_jax.design import api
  if report_only(cli, api, args, target):
    return 0
  config, files = open_run_from_args(api, args, target, overrides)
  cli.root, cli.stage = files.root, "search"
  cli.write_report = lambda interrupted: api.report(files.root)
  failed = run_search_stage(cli, api, config, files, progress_stream(args.quiet))
  if failed is not None:
    return failed
  print(api.report(files.root))
  return 0
