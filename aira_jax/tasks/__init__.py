"""Proxy and benchmark tasks: MAD, MQAR, the text LM with val_bpb, and Long Range Arena; chosen by name."""

from aira_jax.tasks.base import IGNORE, SPLITS, Split, Task, TaskSpec, accuracy, cross_entropy
from aira_jax.tasks.registry import make_task, register_task, task_names

__all__ = ["IGNORE", "SPLITS", "Split", "Task", "TaskSpec", "accuracy", "cross_entropy", "make_task",
           "register_task", "task_names"]
