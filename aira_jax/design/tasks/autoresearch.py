"""The "autoresearch" design task: the agent rewrites a whole JAX `train.py`, trained for a wall-clock budget.

After Karpathy's autoresearch: data preparation, the tokenizer and the metric are fixed; the agent may change
the model, optimiser, schedule and training loop in `train.py`, which `train(data, budget_seconds)` runs
under a time budget and whose `predict(state, tokens)` gives logits. The harness (autoresearch_harness.py) runs
both in the sandbox, in separate processes; the trusted scorer (autoresearch_scoring.py) checks causality and
computes val_bpb on pinned validation text that the training process never holds. Lower is better.

Defaults are sized for a CPU (byte tokenizer, seq_len 256, 60 s, 65,536 evaluation tokens, the KJV corpus);
`PAPER_OPTIONS` gives the paper's setting (BPE 8192, seq_len 2048, 300 s; pass the climbmix parquet shards
as `path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aira_jax.design.tasks import register_design_task
from aira_jax.design.tasks.autoresearch_scoring import STARTUP_S, AutoresearchScorer
from aira_jax.design.tasks.base import DesignTask
from aira_jax.tasks.text.corpus import read_documents
from aira_jax.tasks.text.default_corpus import default_corpus_documents
from aira_jax.tasks.text.packing import assign_splits
from aira_jax.tasks.text.tokenizer import BPETokenizer, default_cache_dir

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "templates" / "autoresearch_train.py"
HARNESS_MODULE = "aira_jax.design.tasks.autoresearch_harness"
PAPER_OPTIONS: dict[str, Any] = {"tokenizer": "bpe", "vocab_size": 8192, "seq_len": 2048, "budget_seconds": 300.0,
                                 "eval_tokens": 40 * 524288, "eval_batch": 8}
PREP_AND_EVAL_ALLOWANCE_S = 300.0
"""Sandbox time on top of budget + compile allowance, for building the data and the final evaluation."""

DESCRIPTION = """\
# Autoresearch: train the best language model in {budget:.0f} seconds

Rewrite `train.py`, a self-contained JAX training script. The harness imports it and calls
`state = train(data, budget_seconds)`; the state is saved, and fresh processes later load it and call your
`predict(state, tokens)` on held-out text, scored by **val_bpb** (validation bits per byte; **lower is
better**). The baseline in `train.py` is a small GPT: RoPE, QK-norm,
ReLU^2 MLP, logit soft-cap 15, value embeddings on alternating layers, Muon for the block matrices and AdamW
for the rest, a warmup / warmdown learning-rate schedule over the time budget.

## Contract
`train(data, budget_seconds: float) -> state`, where `state` is anything pickle can save once JAX arrays are
turned into numpy arrays (e.g. a dict of parameters and any config), and `data` (read-only) has:
- `data.train_tokens`, `data.train_targets`: `(rows, {seq_len})` int32 numpy arrays; targets are the next
  tokens, and `data.ignore_id` (-100) marks padding targets, which must not be trained on. Every row starts
  with `data.bos_id`; documents are packed so a row never splits a document piece.
- `data.vocab_size` ({vocab}), `data.seq_len` ({seq_len}), `data.bos_id`, `data.token_bytes` (UTF-8 bytes of
  each token id, 0 for BOS).
- `data.start_clock()`: call it once, right after your first training step has finished (so compilation is
  not counted). `data.elapsed()` gives seconds since then, `data.remaining()` the seconds left.
- `data.report(steps=..., tokens=..., train_loss=...)`: optional, shown with your score.

`predict(state, tokens)`, a module-level function, takes the reloaded state (numpy arrays where you returned
JAX arrays) and a `(batch, {seq_len})` int32 array and returns logits `(batch, {seq_len}, vocab_size)` float32
(a JAX array is fine). It must be **causal**: logits at position t may depend only on `tokens[:, :t + 1]`,
and a row's logits must not depend on the other rows of its batch. Anything printed goes to the run's output.

## Rules
- Only `train.py` changes. Use JAX, flax and optax; no other files, no network, no downloads.
- Train only on `data`: never read the corpus files, the validation split or the harness's memory.
- The budget is {budget:.0f} s of wall clock from `data.start_clock()` until `train` returns. Call
  `start_clock()` right after the first step; more than {compile:.0f} s before it fails the run, and
  training longer than the budget (+{overrun:.0f} s grace) fails it too. The training process is killed
  {startup:.0f} s after budget + allowance + grace, whatever its clock says. Evaluation is not counted.

## Evaluation (fixed, outside your process)
Two fresh processes each load `train.py` and the saved state and return `predict(state, rows)` for batches of
{eval_batch} rows: between them every validation row, mixed with rows whose tokens after a random position were
replaced by another row's (a row and its changed copy never go to the same process). Outside your process,
logits up to that position must equal the original row's ("predict looks at future tokens" fails the run), every
logit must be finite and of the right shape, and val_bpb = sum of next-token cross-entropy in nats / (ln 2 * sum
of the UTF-8 byte lengths of the target tokens) over {eval_tokens} validation tokens (BOS targets and padding
excluded). Tokenizer: {tokenizer}. Stages: import, interface, train; then import, predict (twice); then
causality and score (trusted).
"""


def prepare_bpe(path: Path | None, vocab_size: int, max_documents: int | None, cache_dir: Path) -> int:
  """Trains (or loads) and caches the BPE tokenizer the harness's TextTask will load; its vocabulary size.

  Mirrors TextTask's construction (same documents, split and cache key) without creating JAX arrays, so the
  parent process does not start JAX just to build a task.
  """
  documents = (default_corpus_documents(max_documents) if path is None
               else read_documents(path, max_documents=max_documents))
  return BPETokenizer.train_or_load(assign_splits(documents)["train"], vocab_size, cache_dir).vocab_size


def make_autoresearch_task(tokenizer: str = "bytes", path: str | Path | None = None, seq_len: int = 256,
                           budget_seconds: float = 60.0, vocab_size: int = 8192,
                           max_documents: int | None = None, max_tokens: int | None = None,
                           eval_tokens: int | None = 65536, seed: int = 0, cache_dir: str | Path | None = None,
                           compile_allowance_s: float = 120.0, overrun_s: float | None = None,
                           eval_batch: int = 16, causality_atol: float = 1e-3, causality_rows: int = 16,
                           eval_allowance_s: float = PREP_AND_EVAL_ALLOWANCE_S,
                           timeout_s: float | None = None) -> DesignTask:
  """The autoresearch design task; the options go to the harness's settings (see the module docstring).

  tokenizer: "bytes" (vocab 257) or "bpe" (trained on the training documents, `vocab_size`, cached in
  `cache_dir`). path: corpus file or directory (None = the default KJV corpus). max_documents / max_tokens:
  read only the first documents / keep only that many training tokens; with "bpe" the tokenizer is trained
  (or loaded) here. eval_tokens: fixed number of validation tokens (None = the whole validation split).
  overrun_s: grace over the budget (default 5% of it, at least 2 s). causality_rows: check rows mixed into
  the scored ones; causality_atol: the largest change of a past log-probability (nats) they may show.
  eval_allowance_s: the kill limit of the predict phase. The train phase is killed after budget + compile
  allowance + grace + STARTUP_S. timeout_s: kept for reports and the CLI (default budget + compile allowance +
  grace + 300 s); the two phases use the limits above.
  """
  if tokenizer not in ("bytes", "bpe"):
    raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {tokenizer!r}")
  if budget_seconds <= 0:
    raise ValueError(f"budget_seconds must be positive, got {budget_seconds}")
  if seq_len < 2:
    raise ValueError(f"seq_len must be at least 2 (the causality check needs a future), got {seq_len}")
  if eval_batch < 1:
    raise ValueError(f"eval_batch must be at least 1, got {eval_batch}")
  if causality_rows < 1 or causality_atol <= 0 or eval_allowance_s <= 0:
    raise ValueError(f"causality_rows must be >= 1 and causality_atol, eval_allowance_s > 0, got {causality_rows}, "
                     f"{causality_atol}, {eval_allowance_s}")
  overrun_s = max(2.0, 0.05 * budget_seconds) if overrun_s is None else float(overrun_s)
  path = None if path is None else Path(path).expanduser().resolve()  # The harness runs in another directory.
  actual_vocab = 257
  if tokenizer == "bpe":
    # The sandboxed harness may not write outside the candidate's directory (and its environment may name
    # another home), so the BPE tokenizer is trained and cached here, at a cache path pinned in the settings.
    cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()
    actual_vocab = prepare_bpe(path, vocab_size, max_documents, cache_dir)
  if timeout_s is None:
    timeout_s = budget_seconds + compile_allowance_s + overrun_s + PREP_AND_EVAL_ALLOWANCE_S
  settings = {
      "filename": "train.py", "tokenizer": tokenizer, "path": None if path is None else str(path),
      "cache_dir": None if cache_dir is None else str(Path(cache_dir).expanduser().resolve()),
      "seq_len": int(seq_len), "vocab_size": int(vocab_size), "max_documents": max_documents,
      "max_tokens": max_tokens, "eval_tokens": eval_tokens, "seed": int(seed),
      "budget_seconds": float(budget_seconds), "compile_allowance_s": float(compile_allowance_s),
      "overrun_s": overrun_s, "eval_batch": int(eval_batch), "causality_atol": float(causality_atol),
      "causality_rows": int(causality_rows), "eval_allowance_s": float(eval_allowance_s)}
  description = DESCRIPTION.format(
      budget=budget_seconds, seq_len=seq_len, compile=compile_allowance_s, overrun=overrun_s,
      startup=STARTUP_S, eval_batch=eval_batch,
      vocab=actual_vocab,
      eval_tokens="all" if eval_tokens is None else f"{eval_tokens:,}",
      tokenizer="UTF-8 bytes" if tokenizer == "bytes" else f"byte-level BPE, {actual_vocab} tokens")
  return DesignTask(name="autoresearch", description=description, filename="train.py",
                    template=TEMPLATE_PATH.read_text(encoding="utf-8"), metric="val_bpb", lower_is_better=True,
                    harness_module=HARNESS_MODULE, settings=settings, final_metric=None,
                    timeout_s=float(timeout_s), scorer=AutoresearchScorer)


register_design_task("autoresearch", make_autoresearch_task)
