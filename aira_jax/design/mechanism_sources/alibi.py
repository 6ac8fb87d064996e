# seed: alibi
"""ALiBi (Press et al. 2022), bidirectional, as a `score_mod` hook: score - slope(head) * |q_idx - kv_idx|.

Hooks-only file: the harness runs standard bidirectional multi-head attention through the fused
`pallas_kernels.flash_attention` kernel with this score modification. `score_mod(score, q_idx, kv_idx, head)`
gets float32 scores (Q, K), int32 q_idx (Q, 1), kv_idx (1, K) and a scalar int32 head, and returns the
modified scores; it must be elementwise in score and may close over Python scalars but not arrays.
"""

import jax.numpy as jnp

# --- CONFIG (knobs: `NAME = value  # knob: allowed values`, see aira_jax/design/knobs.py) ---
# SLOPE_STEP: head h has slope 2 ** (-(h + 1) * SLOPE_STEP).
SLOPE_STEP = 1.0  # knob: 0.25, 0.5, 1.0, 2.0
# --- END CONFIG ---

HYPERPARAMETERS = {}  # honoured only in the "configurable" setting; keys and ranges: see the task description


def score_mod(score, q_idx, kv_idx, head):
  """Penalises scores linearly with the distance between query and key."""
  slope = jnp.exp2(-(head + 1).astype(jnp.float32) * SLOPE_STEP)
  return score - slope * jnp.abs(q_idx - kv_idx).astype(jnp.float32)
