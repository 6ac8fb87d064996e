# seed: local
"""Local (sliding-window) attention as a `mask_mod` hook: each token attends to tokens within WINDOW of it.

Hooks-only file: the harness runs standard bidirectional multi-head attention through the fused
`pallas_kernels.flash_attention` kernel with this mask (FlexAttention style, no kernel code of its own).
`mask_mod(q_idx, kv_idx, head)` gets int32 q_idx (Q, 1), kv_idx (1, K) and a scalar head, and returns a bool
broadcastable to (Q, K), True = keep; it may close over Python scalars but not arrays.
"""

import jax.numpy as jnp

# --- CONFIG (knobs: `NAME = value  # knob: allowed values`, see aira_jax/design/knobs.py) ---
# WINDOW: keep keys with |q_idx - kv_idx| < WINDOW.
WINDOW = 32  # knob: 4, 8, 16, 32, 64, 128
# --- END CONFIG ---

HYPERPARAMETERS = {}  # honoured only in the "configurable" setting; keys and ranges: see the task description


def mask_mod(q_idx, kv_idx, head):
  """True where the key lies within WINDOW positions of the query (either side)."""
  del head
  return jnp.abs(q_idx - kv_idx) < WINDOW
