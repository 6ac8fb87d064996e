"""Pinned document splits and BOS-aligned packing of token streams into fixed-length LM rows.

Pinned split. Each document goes to train, validation or test by a stable hash of its own text (SHA-256 of
its UTF-8 bytes, read as a number in [0, 1)): below `validation_fraction` it is validation, below
`validation_fraction + test_fraction` test, otherwise train. A document's split depends on nothing else, so
adding documents (more training data) never moves an existing document, and validation stays comparable
across runs; identical documents always share a split, so duplicates cannot leak from train into validation.
(Autoresearch pins the last data shard instead; with arbitrary user files there is no shard order to trust.)

Packing rule. Autoresearch describes rows that each start with BOS. Here every document is encoded and cut into
pieces of at most `seq_len` tokens; each piece is prefixed with BOS, so a piece is at most seq_len + 1 tokens
(a long document continues in following pieces, each again starting with BOS). Pieces are laid into rows of
seq_len + 1 tokens in document order, next-fit: a piece goes into the current row if it fits whole, otherwise
the current row is closed (its tail padded) and the piece starts a new row. So every row starts with BOS,
pieces are never split across rows, and no token is dropped (unlike a best-fit packer that crops documents).
Then inputs = row[:-1] and targets = row[1:], with targets IGNORE wherever the target position is padding.
Padding input positions hold BOS (any valid id would do; their targets are ignored).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from aira_jax.tasks.base import IGNORE, Split


def split_of(document: str, validation_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
  """"train", "validation" or "test" for `document`, from a stable hash of its text."""
  if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
    raise ValueError(f"need fractions >= 0 summing below 1, got validation {validation_fraction}, "
                     f"test {test_fraction}")
  digest = hashlib.sha256(document.encode("utf-8")).digest()
  position = int.from_bytes(digest[:8], "big") / 2.0**64
  if position < validation_fraction:
    return "validation"
  if position < validation_fraction + test_fraction:
    return "test"
  return "train"


def assign_splits(documents: Iterable[str], validation_fraction: float = 0.05,
                  test_fraction: float = 0.05) -> dict[str, list[str]]:
  """{"train", "validation", "test"} -> their documents, each keeping the corpus order."""
  splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
  for document in documents:
    splits[split_of(document, validation_fraction, test_fraction)].append(document)
  return splits


def pack_documents(documents_tokens: Iterable[Sequence[int]], seq_len: int, bos_id: int) -> Split:
  """Packs token lists (one per document, no BOS) into BOS-aligned rows; see the module docstring."""
  if seq_len < 1:
    raise ValueError(f"seq_len must be at least 1, got {seq_len}")
  row_len = seq_len + 1
  rows: list[list[int]] = []
  current: list[int] = []
  for tokens in documents_tokens:
    tokens = list(tokens)
    for start in range(0, len(tokens), seq_len):
      piece = [bos_id, *tokens[start:start + seq_len]]
      if current and len(current) + len(piece) > row_len:
        rows.append(current)
        current = []
      current.extend(piece)
  if current:
    rows.append(current)
  packed = np.full((len(rows), row_len), bos_id, np.int32)
  lengths = np.zeros(len(rows), np.int64)
  for i, row in enumerate(rows):
    packed[i, :len(row)] = row
    lengths[i] = len(row)
  targets = packed[:, 1:].copy()
  # Target position j (row index j + 1) is padding when j + 1 >= the row's length.
  padding = np.arange(1, row_len)[None, :] >= lengths[:, None]
  targets[padding] = IGNORE
  return Split(inputs=np.ascontiguousarray(packed[:, :-1]), targets=targets)


def take_tokens(split: Split, max_tokens: int | None, seq_len: int) -> Split:
  """The first ceil(max_tokens / seq_len) rows of `split` (all of it when max_tokens is None)."""
  if max_tokens is None:
    return split
  if max_tokens < 1:
    raise ValueError(f"max_tokens must be positive, got {max_tokens}")
  rows = -(-max_tokens // seq_len)
  return Split(inputs=split.inputs[:rows], targets=split.targets[:rows])
