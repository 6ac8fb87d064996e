"""`python -m aira_jax.design`: see aira_jax/design/cli.py."""

import sys

from aira_jax import host_memory

host_memory.keep_freed_memory()  # before JAX starts its CPU threads: XLA:CPU steps stop page-faulting

from aira_jax.design.cli import main  # noqa: E402

sys.exit(main())
