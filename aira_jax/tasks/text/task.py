"""The text language-modelling task ("text/bytes", "text/bpe"), ranked by val_bpb, as in autoresearch.

Construction reads the corpus (user files at `path`, or the default KJV corpus when `path` is None), assigns
documents to train / validation / test by the pinned content hash (packing.py), and builds the tokenizer: raw
bytes, or BPE trained on the training documents only and cached on disk (tokenizer.py). The tokenizer must
exist before the spec, because the spec carries the vocabulary size. `build_splits` then encodes each split and
packs it into BOS-aligned rows of `seq_len` inputs and `seq_len` next-token targets.

Options:
- path: corpus directory or file (.txt/.jsonl/.parquet); None -> the default corpus (extra aira_jax[corpus]).
- seq_len: positions per row (default 2048 as in autoresearch).
- vocab_size: BPE vocabulary size (default 8192); "text/bytes" is always 257.
- max_documents: read only the first N documents of the corpus (quick runs; note this changes which
  documents exist, so validation numbers are only comparable between runs with the same value).
- max_tokens: cap on training tokens (first ceil(max_tokens / seq_len) rows after shuffling).
- eval_tokens: fixed number of evaluation tokens for validation and test (rows in corpus order, not
  shuffled); None keeps every row.
- cache_dir: where trained BPE tokenizers are cached (default ~/.cache/aira_jax/tokenizers).
- seed: shuffles the training rows; validation and test keep corpus order.
- text_field, txt_split: see corpus.read_documents; validation_fraction, test_fraction: see packing.split_of.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aira_jax.tasks.base import Split, Task, TaskSpec, cross_entropy
from aira_jax.tasks.registry import register_task
from aira_jax.tasks.text.bpb import val_bpb_jax
from aira_jax.tasks.text.corpus import CorpusError, TxtSplit, read_documents
from aira_jax.tasks.text.default_corpus import default_corpus_documents
from aira_jax.tasks.text.packing import assign_splits, pack_documents, take_tokens
from aira_jax.tasks.text.tokenizer import DEFAULT_BPE_VOCAB_SIZE, BPETokenizer, ByteTokenizer

DEFAULT_SEQ_LEN = 2048


class TextTask(Task):
  """Next-token prediction on a text corpus; metric val_bpb (lower is better)."""

  def __init__(self, tokenizer: str = "bytes", path: str | Path | None = None, seq_len: int = DEFAULT_SEQ_LEN,
               vocab_size: int = DEFAULT_BPE_VOCAB_SIZE, max_documents: int | None = None,
               max_tokens: int | None = None, eval_tokens: int | None = None,
               cache_dir: str | Path | None = None, seed: int = 0, text_field: str = "text",
               txt_split: TxtSplit = "blank_line", validation_fraction: float = 0.05,
               test_fraction: float = 0.05):
    super().__init__()
    if seq_len < 1:
      raise ValueError(f"seq_len must be at least 1, got {seq_len}")
    self.seq_len = seq_len
    self.max_tokens = max_tokens
    self.eval_tokens = eval_tokens
    self.seed = seed
    if path is None:
      documents = default_corpus_documents(max_documents)
    else:
      documents = read_documents(path, text_field=text_field, txt_split=txt_split, max_documents=max_documents)
    self.documents = assign_splits(documents, validation_fraction, test_fraction)
    for name, split_documents in self.documents.items():
      if not split_documents:
        raise CorpusError(f"the {name} split got no documents out of {len(documents)} (documents are assigned "
                          "by content hash); give more documents or raise its fraction")
    if tokenizer == "bytes":
      self.tokenizer = ByteTokenizer()
    elif tokenizer == "bpe":
      self.tokenizer = BPETokenizer.train_or_load(self.documents["train"], vocab_size, cache_dir)
    else:
      raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {tokenizer!r}")
    self._token_bytes = jnp.asarray(self.tokenizer.token_bytes)
    self.spec = TaskSpec(name=f"text/{tokenizer}", head="lm", vocab_size=self.tokenizer.vocab_size,
                         seq_len=seq_len, metric="val_bpb", lower_is_better=True)

  @property
  def token_bytes(self) -> np.ndarray:
    """UTF-8 byte length of every token id (0 for special tokens), for val_bpb."""
    return self.tokenizer.token_bytes

  def build_splits(self) -> dict[str, Split]:
    splits = {}
    for name, documents in self.documents.items():
      packed = pack_documents(self.tokenizer.encode_batch(documents), self.seq_len, self.tokenizer.bos_id)
      if name == "train":
        order = np.random.default_rng(self.seed).permutation(len(packed))
        packed = take_tokens(Split(packed.inputs[order], packed.targets[order]), self.max_tokens, self.seq_len)
      else:
        packed = take_tokens(packed, self.eval_tokens, self.seq_len)
      splits[name] = packed
    return splits

  def metrics(self, logits: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """{"loss": mean nats per counted target, "val_bpb": bits per byte of this batch}.

    To score a whole split, add `bpb.bpb_totals` over batches and divide once rather than averaging these.
    """
    return {"loss": cross_entropy(logits, targets),
            "val_bpb": val_bpb_jax(logits, targets, self._token_bytes)}


def make_byte_task(**options) -> TextTask:
  """"text/bytes": the text task with the 257-token byte tokenizer."""
  return TextTask(tokenizer="bytes", **options)


def make_bpe_task(**options) -> TextTask:
  """"text/bpe": the text task with a byte-level BPE tokenizer trained on the corpus (cached)."""
  return TextTask(tokenizer="bpe", **options)


register_task("text/bytes", make_byte_task)
register_task("text/bpe", make_bpe_task)
