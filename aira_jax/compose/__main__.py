"""`python -m aira_jax.compose`: see aira_jax/compose/cli.py."""

import sys

from aira_jax import host_memory

host_memory.keep_freed_memory()  # before JAX starts its CPU threads: XLA:CPU steps stop page-faulting

from aira_jax.compose.cli import main  # noqa: E402

sys.exit(main())
