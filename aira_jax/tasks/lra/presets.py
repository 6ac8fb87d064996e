"""Reference Transformer sizes for the Long Range Arena tasks, as `Preset`s (config + depth in layers).

Depth counts this project's layers, where one Transformer block is two layers (attention "A" + MLP "M"), so
depth = 2 x blocks. Vocabulary and max_seq_len are set per task (tokenize.py).

Provenance — from the released LRA configs (lra_benchmarks/*/configs/base_*_config.py) as recalled, NOT
re-checked against the files here (verify before quoting):
  listops:   6 blocks, emb 512, 8 heads, MLP 2048, max length 2000.
  text:      4 blocks, emb 256, 4 heads, MLP 1024, max length 1000 in the code (4096 in the paper's table;
             the preset uses 4096, the task default).
  retrieval: 4 blocks, emb 128, 4 heads, MLP 512, max length 4000 per document.
Assumptions (not recalled with confidence; the LRA image configs were small, about 1..4 blocks of width
  32..128): image: 3 blocks, emb 128, 4 heads, MLP 256; pathfinder and pathx: 4 blocks, emb 128, 4 heads,
  MLP 256.
Not reproduced: LRA used GELU MLPs, learned/sinusoidal absolute positions, post-/pre-LN details and a pooled
or CLS classifier; these presets keep this project's defaults (SwiGLU MLP of ffn_dim, RoPE), so parameter
counts differ from the paper's. `tiny` is for CPU tests: width 32, 2 heads, FFN 64, 2 layers.
"""

from __future__ import annotations

from aira_jax.model_config import ModelConfig
from aira_jax.models.presets import Preset
from aira_jax.tasks.lra.tokenize import BYTE_VOCAB_SIZE, DEFAULT_LENGTHS, LISTOPS_VOCAB_SIZE

_VOCAB = {"listops": LISTOPS_VOCAB_SIZE, "text": BYTE_VOCAB_SIZE, "retrieval": BYTE_VOCAB_SIZE, "image": 256,
          "pathfinder": 256, "pathx": 256}
# task -> (blocks, d_model, heads, ffn_dim, source)
_SIZES = {
    "listops": (6, 512, 8, 2048, "LRA config (recalled)"),
    "text": (4, 256, 4, 1024, "LRA config (recalled)"),
    "retrieval": (4, 128, 4, 512, "LRA config (recalled)"),
    "image": (3, 128, 4, 256, "assumption"),
    "pathfinder": (4, 128, 4, 256, "assumption"),
    "pathx": (4, 128, 4, 256, "assumption"),
}


def _preset(task: str) -> Preset:
  blocks, width, heads, ffn, source = _SIZES[task]
  config = ModelConfig(vocab_size=_VOCAB[task], d_model=width, num_heads=heads, ffn_dim=ffn,
                       max_seq_len=DEFAULT_LENGTHS[task])
  return Preset(f"lra/{task}", config, depth=2 * blocks,
                description=f"{blocks} blocks, width {width}, {heads} heads, FFN {ffn} ({source})")


LRA_PRESETS: dict[str, Preset] = {f"lra/{task}": _preset(task) for task in _SIZES}


def lra_preset(task: str, tiny: bool = False) -> Preset:
  """The reference preset of `task` ("listops" or "lra/listops", ...); `tiny=True` gives a CPU-test size
  with the same vocabulary and length."""
  key = task if task.startswith("lra/") else f"lra/{task}"
  if key not in LRA_PRESETS:
    raise ValueError(f"unknown LRA task {task!r}; choose one of {', '.join(LRA_PRESETS)}")
  preset = LRA_PRESETS[key]
  if not tiny:
    return preset
  config = preset.config.replace(d_model=32, num_heads=2, ffn_dim=64, ssm_head_dim=8, ssm_state_dim=8,
                                 ssm_chunk_size=16)
  return Preset(f"{key}/tiny", config, depth=2, description="CPU tests: width 32, 2 heads, FFN 64, 2 layers")
