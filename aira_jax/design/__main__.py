"""`python -m aira_jax.design`: see aira_jax/design/cli.py."""

import sys

try:
  from aira_jax.cli_common import exit_process
  from aira_jax.design.cli import main
except KeyboardInterrupt:
  print("interrupted before the run directory was made; nothing to resume", file=sys.stderr)
  sys.exit(130)

exit_process(main())
