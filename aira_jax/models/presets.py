"""Named model sizes: `tiny` (tests), `proxy` (the search scale), and `350m`, `1b`, `3b` (scale-up).

`1b` and `3b` match Llama 3.2 1B's and 3B's widths. A Llama block (attention + MLP) is two layers
here, so their default depth is twice Llama's block count: 1B = 16 blocks = 32 layers, 3B = 28 blocks = 56
layers.

`350m` is this project's own choice, since Llama 3.2 has no such size: Llama 3.2's recipe (head_dim 64, 4:1
grouped KV, tied 128,256-token vocabulary, RoPE theta 500,000) at d_model 1024, 16 heads / 4 KV heads, FFN
3584 and 16 blocks (32 layers, the 1B's depth, so a 16-layer search stretches to it exactly). With the Llama
layout "AM" * 16 it has 349,471,744 parameters (131,334,144 of them the tied embedding). With "AM" * 16
and * 28 the 1b and 3b presets have 1,235,814,400 and 3,212,749,824 parameters, Llama 3.2's exact counts.

`proxy` is the million-parameter scale of the search: width 128 as in MAD, 4 heads of 32, SwiGLU FFN 384
(~3 x width), Mamba-2 with 8 heads of 32 and state 16; 16 layers by default (1,738,880 parameters for "AM" * 8
with a 256-token vocabulary).

`tiny` is for tests: width 32, everything small, chunk 16.
"""

from __future__ import annotations

import dataclasses

from aira_jax.model_config import ModelConfig

_LLAMA32 = dict(vocab_size=128_256, rope_theta=500_000.0, tie_embeddings=True, max_seq_len=8192,
                ssm_head_dim=64, ssm_state_dim=128, ssm_groups=1, ssm_chunk_size=256)


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named size: the model config and the default number of layers."""

  name: str
  config: ModelConfig
  depth: int
  description: str


PRESETS: dict[str, Preset] = {
    p.name: p for p in [
        Preset("tiny", ModelConfig(vocab_size=64, d_model=32, num_heads=4, num_kv_heads=2, ffn_dim=64,
                                   ssm_head_dim=8, ssm_state_dim=8, ssm_chunk_size=16, max_seq_len=256),
               depth=4, description="for tests: width 32, 4 heads (2 KV), FFN 64"),
        Preset("proxy", ModelConfig(vocab_size=256, d_model=128, num_heads=4, ffn_dim=384, ssm_head_dim=32,
                                    ssm_state_dim=16, ssm_chunk_size=64, max_seq_len=1024),
               depth=16, description="search scale: width 128 (as MAD), 4 heads, FFN 384, ~1.7M parameters"),
        Preset("350m", ModelConfig(d_model=1024, num_heads=16, num_kv_heads=4, ffn_dim=3584, **_LLAMA32),
               depth=32, description="Llama-3.2-style 350M: width 1024, 16 heads (4 KV), FFN 3584, 32 layers"),
        Preset("1b", ModelConfig(d_model=2048, num_heads=32, num_kv_heads=8, ffn_dim=8192, **_LLAMA32),
               depth=32, description="Llama 3.2 1B widths: 2048, 32 heads (8 KV), FFN 8192, 32 layers"),
        Preset("3b", ModelConfig(d_model=3072, num_heads=24, num_kv_heads=8, ffn_dim=8192, **_LLAMA32),
               depth=56, description="Llama 3.2 3B widths: 3072, 24 heads (8 KV), FFN 8192, 56 layers"),
    ]
}


def get_preset(name: str) -> Preset:
  """The preset called `name`; ValueError listing the names otherwise."""
  try:
    return PRESETS[name.lower()]
  except (KeyError, AttributeError):
    raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def preset_config(name: str, **overrides) -> ModelConfig:
  """The preset's ModelConfig with `overrides` applied, e.g. preset_config("proxy", vocab_size=16)."""
  config = get_preset(name).config
  unknown = set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)}
  if unknown:
    raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; see aira_jax.models.ModelConfig")
  return config.replace(**overrides) if overrides else config
