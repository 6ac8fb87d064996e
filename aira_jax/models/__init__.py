"""Models built from a (Layout, ModelConfig): the causal LanguageModel, the SequenceClassifier, size presets,
and exact parameter / analytic FLOP counting."""

from aira_jax.model_config import ModelConfig
from aira_jax.models.classifier import SequenceClassifier
from aira_jax.models.counting import ParamCount, count_params, flops_per_token, layer_param_count
from aira_jax.models.language_model import LanguageModel
from aira_jax.models.presets import PRESETS, Preset, get_preset, preset_config

__all__ = [
    "LanguageModel", "SequenceClassifier", "ModelConfig", "ParamCount", "count_params", "flops_per_token",
    "layer_param_count", "PRESETS", "Preset", "get_preset", "preset_config",
]
