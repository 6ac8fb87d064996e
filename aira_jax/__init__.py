"""aira_jax: LLM agents that discover neural-network architectures, in JAX.

Public entry points of the foundation: `Layout` (the searched architecture), `ModelConfig` and its presets,
`LanguageModel` and `SequenceClassifier` (Flax NNX), and exact parameter / FLOP counting.
"""

from aira_jax.layout import Layout
from aira_jax.primitives import Primitive, alphabet, register_primitive

__version__ = "0.1.0"

__all__ = ["Layout", "Primitive", "alphabet", "register_primitive", "__version__"]
