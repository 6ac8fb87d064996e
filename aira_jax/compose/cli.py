"""`python -m aira_jax.compose`: the command line of AIRA-Compose (search, scale, report).

    python -m aira_jax.compose                                 # both stages at tiny CPU defaults, then the report
    python -m aira_jax.compose search --config experiments/compose/tiny.yaml search.depth=8
    python -m aira_jax.compose scale --resume runs/20261127-031502
    python -m aira_jax.compose report runs/20261127-031502
    python -m aira_jax.compose run --resume runs/20261127-031502 search.steps_per_agent=40

Exit status: 0 done, 1 the run failed, 2 a usage or configuration error (printed without a traceback),
130 interrupted (everything finished so far is saved; `--resume` continues).
"""

from __future__ import annotations

import argparse
import sys

from aira_jax.cli_common import (add_run_arguments, open_run_from_args, parse_run_args, progress_stream, report_target,
                                 run_guarded)
from aira_jax.compose.config import ConfigError

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
             "base_url: URL, headers: {...}} (headers: openai only)\n\nEverything goes to runs/<id>/: "
             "resolved_config.yaml, journal.jsonl, results.sqlite, report.md, *.png.")
  add_run_arguments(parser, COMMANDS)
  return parser


def main(argv: list[str] | None = None) -> int:
  args, target, overrides = parse_run_args(build_parser(), COMMANDS, argv)
  from aira_jax.compose import api
  stream = progress_stream(args.quiet)

  def body() -> int:
    if args.command == "report":
      print(api.report(report_target(target, args.resume, PROG)))
      return 0
    if args.command == "scale" and args.resume is None:
      raise ConfigError(f"scale works on a finished search: python -m {PROG} scale --resume runs/<id>")
    config, files = open_run_from_args(api, args, target, overrides)
    if args.command == "run":
      api.check_scale_task(config)  # a missing corpus fails now, not after the search
    if args.command in ("run", "search"):
      result = api.search(config, files, stream=stream)
      if result.ensemble.interrupted:
        api.report(files.root)
        print(f"interrupted; finished work is saved. Continue with: python -m {PROG} {args.command} "
              f"--resume {files.root}", file=sys.stderr)
        return 130
    if args.command in ("run", "scale"):
      api.scale(config, files, stream=stream)
    print(api.report(files.root))
    return 0

  return run_guarded(body, PROG)
