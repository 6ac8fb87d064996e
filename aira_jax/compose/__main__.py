"""`python -m aira_jax.compose`: see aira_jax/compose/cli.py."""

import sys

from aira_jax.compose.cli import main

sys.exit(main())
