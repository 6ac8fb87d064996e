"""Long Range Arena (Tay et al. 2020): ListOps, Text, Retrieval, Image, Pathfinder and Path-X as tasks.

Importing the package registers the six "lra/..." task names (see tasks.py); generators live in listops.py
and pathfinder.py, file readers in loaders.py, tokenisation in tokenize.py, reference model sizes in presets.py.
"""

from aira_jax.tasks.lra import tasks  # noqa: F401 - registers the tasks
from aira_jax.tasks.lra.presets import LRA_PRESETS, lra_preset

__all__ = ["LRA_PRESETS", "lra_preset"]
