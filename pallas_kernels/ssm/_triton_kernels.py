"""Raw Triton kernel for the Mamba-1 selective-scan forward (imports triton at module level).

Import this module only inside functions: triton is the optional `[gpu]` extra. `triton_scan.py` calls the
kernel through jax_triton; tests compile it for sm_90 without a GPU.
"""

import triton
import triton.language as tl


@triton.jit
def selective_scan_fwd_kernel(u_ptr, dl_ptr, a_ptr, b_ptr, c_ptr, h0_ptr, y_ptr, ht_ptr,
                              SEQ: tl.constexpr, DIM: tl.constexpr, GROUPS: tl.constexpr,
                              NSTATE: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
  """One program: one batch row and BLOCK_D channels; a loop over time carries the (BLOCK_D, BLOCK_N) state.

  All pointers are contiguous float32: u, dl, y (batch, SEQ, DIM); a (DIM, NSTATE);
  b, c (batch, SEQ, GROUPS, NSTATE); h0, ht (batch, DIM, NSTATE). dl is the final (positive) step size.
  """
  pid_b = tl.program_id(0)
  pid_d = tl.program_id(1)
  offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
  offs_n = tl.arange(0, BLOCK_N)
  mask_d = offs_d < DIM
  mask = mask_d[:, None] & (offs_n < NSTATE)[None, :]
  state_off = pid_b * DIM * NSTATE + offs_d[:, None] * NSTATE + offs_n[None, :]
  a = tl.load(a_ptr + offs_d[:, None] * NSTATE + offs_n[None, :], mask=mask, other=0.0)
  h = tl.load(h0_ptr + state_off, mask=mask, other=0.0)
  group_off = (offs_d // (DIM // GROUPS))[:, None] * NSTATE + offs_n[None, :]
  for t in range(SEQ):
    row = pid_b * SEQ + t
    u = tl.load(u_ptr + row * DIM + offs_d, mask=mask_d, other=0.0)
    dl = tl.load(dl_ptr + row * DIM + offs_d, mask=mask_d, other=0.0)
    bt = tl.load(b_ptr + row * GROUPS * NSTATE + group_off, mask=mask, other=0.0)
    ct = tl.load(c_ptr + row * GROUPS * NSTATE + group_off, mask=mask, other=0.0)
    h = tl.exp(dl[:, None] * a) * h + (dl * u)[:, None] * bt
    tl.store(y_ptr + row * DIM + offs_d, tl.sum(h * ct, axis=1), mask=mask_d)
  tl.store(ht_ptr + state_off, h, mask=mask)
