"""`python -m aira_jax.compose`: the command line of AIRA-Compose (search, scale, report).

    python -m aira_jax.compose                                 # both stages at tiny CPU defaults, then the report
    python -m aira_jax.compose search --config experiments/compose/tiny.yaml search.depth=8
    python -m aira_jax.compose scale --resume runs/20261127-031502
    python -m aira_jax.compose report runs/20261127-031502
    python -m aira_jax.compose run --resume runs/20261127-031502 search.steps_per_agent=40

Exit status: 0 done, 1 the run failed (an agent crashed, an evaluation or a stage failed for infrastructure
reasons: one line each, then the resume command; the scale stage of `run` is not started after such a
search), 2 a usage or configuration error (one line, no run directory), 130 interrupted by Ctrl-C (the report
says so; one line with the resume command; everything finished so far is saved).
"""

from __future__ import annotations

import argparse

from aira_jax.cli_common import (EXECUTOR_HELP, CliRun, add_run_arguments, open_run_from_args, parse_run_args,
                                 progress_stream, report_only, run_search_stage)
from aira_jax.compose.config import ComposeConfig, ConfigError
from aira_jax.config_io import choices_help
from aira_jax.faults import check_stop

COMMANDS = ("run", "search", "scale", "report")
PROG = "aira_jax.compose"


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m aira_jax.compose",
      description="AIRA-Compose: agents search layer layouts (attention A, MLP M, Mamba S) on a proxy task; the "
                  "best are aggregated, extrapolated to depth and compared with baselines in an isoFLOP study.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="commands:\n  run     search, then scale, then the report (default)\n  search  stage 1 only\n"
             "  scale   stage 2 on a run's search results (give --resume RUN_DIR)\n"
             "  report  rewrite RUN_DIR/report.md and its plots\n\n"
             "overrides: dotted key=value pairs parsed as YAML, e.g. search.depth=8 search.space=AMS\n"
             "  evaluator.task=mqar scale.budgets=[1e11,3e11] 'search.agents=[{name: g, policy: greedy, "
             "llm: gemini:gemini-2.5-pro}]'\n  an LLM agent's client: llm_options: {timeout_s: 60, max_attempts: 3, "
             "base_url: URL, headers: {...}} (headers: openai only)\n\n" + EXECUTOR_HELP +
             "Everything goes to runs/<id>/: "
             "resolved_config.yaml, journal.jsonl, results.sqlite, report.md, *.png.\n\n"
             f"settings with fixed choices ([] a list of them):\n{choices_help(ComposeConfig)}")
  add_run_arguments(parser, COMMANDS)
  return parser


def main(argv: list[str] | None = None) -> int:
  cli = CliRun(PROG)
  return cli.run(lambda: run_command(cli, *parse_run_args(build_parser(), COMMANDS, argv)))


def run_command(cli: CliRun, args: argparse.Namespace, target: str | None, overrides: list[str]) -> int:
  """The body of `main`: one command, with `cli` told the run directory, the stage and how to report."""
  from aira_jax.compose import api
  if report_only(cli, api, args, target):
    return 0
  if args.command == "scale" and args.resume is None:
    raise ConfigError(f"scale works on a finished search: python -m {PROG} scale --resume runs/<id>")
  # With `run`, a missing corpus fails now, before the run directory exists, not after the search.
  config, files = open_run_from_args(api, args, target, overrides, check_scale=args.command == "run")
  cli.root, cli.stage = files.root, "search" if args.command in ("run", "search") else "scale"
  cli.write_report = lambda interrupted: _write_report(api, files.root, interrupted)
  api.mark_interrupted(files.root, None)
  stream = progress_stream(args.quiet)
  if args.command in ("run", "search"):
    failed = run_search_stage(cli, api, config, files, stream)
    if failed is not None:  # the scale stage waits for a clean search: resuming finishes it
      return failed
  if args.command in ("run", "scale"):
    cli.stage = "scale"
    check_stop()
    api.scale(config, files, stream=stream)
  print(api.report(files.root))
  return 0


def _write_report(api, run_dir, interrupted: str | None):
  if interrupted:
    api.mark_interrupted(run_dir, interrupted)
  return api.report(run_dir)
