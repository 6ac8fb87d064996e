"""`python -m aira_jax.design`: see aira_jax/design/cli.py."""

import sys

from aira_jax.design.cli import main

sys.exit(main())
