"""Raw Triton kernels for the scans' forward passes: the Mamba-1 selective scan and the Mamba-2 SSD chunk sweep
(imports triton at module level).

Import this module only inside functions: triton is the optional `[gpu]` extra. `triton_scan.py` and
`ssd_pallas.py` (forward_kernel="triton") call the kernels through jax_triton; tests compile them for sm_90
without a GPU and run them in Triton's interpreter where torch is installed.
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


@triton.jit
def _mm(a, b, BF16: tl.constexpr):
  """a @ b with float32 accumulation: bfloat16 operands (one tensor-core pass), else float32 ones as 3-pass TF32
  (float32-accurate; the Pallas kernels' `kernel_dot_precision`)."""
  if BF16:
    return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
  return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="tf32x3")


@triton.jit
def ssd_fwd_kernel(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, h0_ptr, y_ptr, ht_ptr, states_ptr,
                   HEADS: tl.constexpr, GROUPS: tl.constexpr, SEQ: tl.constexpr, HEAD_DIM: tl.constexpr,
                   NSTATE: tl.constexpr, CHUNK: tl.constexpr, BLOCK_P: tl.constexpr, BF16: tl.constexpr):
  """One program: one (batch, head) and BLOCK_P head_dim columns; a loop over the chunks carries the
  (BLOCK_P, NSTATE) float32 state, as `_ssd_kernels.ssd_fwd_kernel` does (same math, same matmul operands):
    y  = (C B^T * Lmask) @ (dt x) + exp(a_cum) * (C S^T)
    S' = exp(a_last) S + (dt x exp(a_last - a_cum))^T B,   Lmask[i, j] = exp(a_cum_i - a_cum_j) for i >= j.

  Contiguous, head-major, padded (SEQ a multiple of CHUNK; HEAD_DIM, NSTATE, CHUNK powers of two >= 16):
  x, y (batch, HEADS, SEQ, HEAD_DIM) in the input dtype; dt, a (the chunk-local cumsum of dt * A) (batch, HEADS,
  SEQ) float32; b, c (batch, GROUPS, SEQ, NSTATE); h0, ht (batch, HEADS, HEAD_DIM, NSTATE) float32; states
  (batch, HEADS, SEQ // CHUNK, HEAD_DIM, NSTATE) float32, each chunk's entry state (the backward's residual).
  BF16: the matmul operands are bfloat16 (all of x, B, C are), else float32.
  """
  pid_bh = tl.program_id(0)
  pid_p = tl.program_id(1)
  head = pid_bh % HEADS
  group_row = (pid_bh // HEADS) * GROUPS + head // (HEADS // GROUPS)
  rows_q = tl.arange(0, CHUNK)
  cols_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
  cols_n = tl.arange(0, NSTATE)
  state_tile = cols_p[:, None] * NSTATE + cols_n[None, :]
  state = tl.load(h0_ptr + pid_bh * HEAD_DIM * NSTATE + state_tile)
  causal = rows_q[:, None] >= rows_q[None, :]
  last = rows_q == CHUNK - 1
  for chunk in range(SEQ // CHUNK):
    rows = chunk * CHUNK + rows_q
    x_tile = (pid_bh * SEQ + rows)[:, None] * HEAD_DIM + cols_p[None, :]
    bc_tile = (group_row * SEQ + rows)[:, None] * NSTATE + cols_n[None, :]
    x = tl.load(x_ptr + x_tile).to(tl.float32)
    dt = tl.load(dt_ptr + pid_bh * SEQ + rows)
    a = tl.load(a_ptr + pid_bh * SEQ + rows)
    b = tl.load(b_ptr + bc_tile)
    c = tl.load(c_ptr + bc_tile)
    tl.store(states_ptr + (pid_bh * (SEQ // CHUNK) + chunk) * HEAD_DIM * NSTATE + state_tile, state)
    xdt = x * dt[:, None]
    decay = tl.where(causal, tl.exp(tl.where(causal, a[:, None] - a[None, :], 0.0)), 0.0)
    scores = _mm(c, tl.trans(b), BF16) * decay
    y = _mm(scores, xdt, BF16) + tl.exp(a)[:, None] * _mm(c, tl.trans(state), BF16)
    tl.store(y_ptr + x_tile, y.to(y_ptr.dtype.element_ty))
    a_last = tl.sum(tl.where(last, a, 0.0), axis=0)
    state = tl.exp(a_last) * state + _mm(tl.trans(xdt * tl.exp(a_last - a)[:, None]), b, BF16)
  tl.store(ht_ptr + pid_bh * HEAD_DIM * NSTATE + state_tile, state)
