"""`python -m aira_jax.compose`: see aira_jax/compose/cli.py."""

from aira_jax.faults import import_entry_point

main = import_entry_point("aira_jax.compose.cli")

from aira_jax.cli_common import exit_process  # noqa: E402  (imported by the line above)

exit_process(main())
