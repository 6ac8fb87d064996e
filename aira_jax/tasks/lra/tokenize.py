"""Long Range Arena tokenisation: byte ids for Text/Retrieval, a small vocabulary for ListOps, fixed lengths.

Why one module: every LRA task turns raw text into int32 ids padded (or truncated) to one length, and the
ids must agree between the generator, the loaders and the TSV writer.

Byte level (Text, Retrieval): the UTF-8 bytes of a document, id = byte + 1 (1..256); 0 is padding, so the
vocabulary has 257 entries (BYTE_VOCAB_SIZE).
ListOps: 0 pad, 1..10 the digits "0".."9", 11 "[MIN", 12 "[MAX", 13 "[MED", 14 "[SM", 15 "]"
(LISTOPS_VOCAB_SIZE = 16). The released files also hold "(" and ")" grouping tokens; they carry no
information (the bracket structure already does) and are dropped, as the LRA input pipeline does.
Default lengths (LRA): Text 4096 (the reference code used 1000), Retrieval 4000 per document, ListOps 2000,
Image / Pathfinder 1024, Path-X 16384.
"""

from __future__ import annotations

import numpy as np

PAD = 0
BYTE_VOCAB_SIZE = 257
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
LISTOPS_TOKENS = ("<pad>",) + tuple(str(d) for d in range(10)) + OPERATORS + (END,)
LISTOPS_VOCAB_SIZE = len(LISTOPS_TOKENS)
LISTOPS_IDS = {token: i for i, token in enumerate(LISTOPS_TOKENS)}
DIGIT_OFFSET = 1
OPERATOR_OFFSET = 11
END_ID = LISTOPS_IDS[END]
DEFAULT_LENGTHS = {"listops": 2000, "text": 4096, "retrieval": 4000, "image": 1024, "pathfinder": 1024,
                   "pathx": 16384}


def pad_or_truncate(sequences, max_len: int) -> np.ndarray:
  """Stacks 1-D id sequences into (N, max_len) int32, cutting long ones and padding short ones with PAD."""
  out = np.full((len(sequences), max_len), PAD, np.int32)
  for row, seq in enumerate(sequences):
    seq = np.asarray(seq)[:max_len]
    out[row, :len(seq)] = seq
  return out


def encode_bytes(text: str | bytes) -> np.ndarray:
  """UTF-8 bytes of `text` as ids 1..256 (int32)."""
  data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
  return np.frombuffer(data, np.uint8).astype(np.int32) + 1


def decode_bytes(ids: np.ndarray) -> bytes:
  """Inverse of `encode_bytes`, skipping padding."""
  ids = np.asarray(ids)
  return (ids[ids != PAD] - 1).astype(np.uint8).tobytes()


def encode_listops(expression: str) -> np.ndarray:
  """ListOps ids of a bracketed expression ("[MAX 4 3 [MIN 2 3 ] 1 0 ]", with or without "( )" tokens).

  ValueError naming the first token outside the vocabulary."""
  ids = []
  for token in expression.split():
    if token in ("(", ")"):
      continue
    if token not in LISTOPS_IDS or token == "<pad>":
      raise ValueError(f"unknown ListOps token {token!r} in {expression[:80]!r}; expected digits, "
                       f"{', '.join(OPERATORS)} or {END!r}")
    ids.append(LISTOPS_IDS[token])
  return np.asarray(ids, np.int32)


def decode_listops(ids: np.ndarray) -> str:
  """The space-separated expression of ListOps ids, skipping padding."""
  return " ".join(LISTOPS_TOKENS[i] for i in np.asarray(ids) if i != PAD)
