"""Where evaluations and training runs execute: in this process (`local`, the default) or on a Ray cluster.

`ExecutorConfig` is the `executor` section shared by the compose and design configs. The `local` backend is the
pipelines' own code and needs nothing more. The `ray` backend (`ray_cluster.py`, `ray_pool.py`; Ray from the
`[ray]` extra) keeps agents, journal, store and LLM calls in the driver and runs each evaluation in a
long-lived Ray actor on a worker node; nothing here imports Ray until a `ray` run asks for it.
"""

from aira_jax.executor.config import ExecutorConfig, check_executor

__all__ = ["ExecutorConfig", "check_executor"]
