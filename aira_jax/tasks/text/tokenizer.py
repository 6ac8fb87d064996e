"""Tokenizers for the text task: raw UTF-8 bytes, or byte-level BPE trained on the corpus and cached on disk.

Both expose the same small interface the task and val_bpb need: `encode(text) -> list[int]` (no BOS added),
`decode(ids) -> str` (special tokens dropped), `vocab_size`, `bos_id`, and `token_bytes`, an int32 array giving
the UTF-8 byte length of every token id (0 for special tokens) so val_bpb can turn nats per token into bits per
byte.

ByteTokenizer: ids 0..255 are the bytes, 256 is BOS, vocab_size 257.

BPETokenizer: Hugging Face `tokenizers` byte-level BPE (GPT-2 style pre-tokenizer, all 256 bytes in the initial
alphabet so any text encodes), with one special token "<|bos|>" as id 0; vocab_size defaults to 8192 as in
autoresearch (a small corpus may end with fewer merges, so read `vocab_size` back). Training takes seconds to
minutes, so the trained tokenizer is saved as JSON under `cache_dir` (default ~/.cache/aira_jax/tokenizers, or
$AIRA_JAX_CACHE/tokenizers) in a file named by a fingerprint of the training documents and the vocab size; the
next construction with the same documents and size loads it instead of training.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BOS_TOKEN = "<|bos|>"
DEFAULT_BPE_VOCAB_SIZE = 8192
# Bump when the training recipe changes, so old cache files are not reused for a different tokenizer.
_BPE_RECIPE_VERSION = 1
INSTALL_HINT = "pip install 'aira_jax[text]'"


class ByteTokenizer:
  """UTF-8 bytes as tokens 0..255, plus BOS = 256 (vocab_size 257)."""

  vocab_size = 257
  bos_id = 256

  def __init__(self):
    self.token_bytes = np.ones(self.vocab_size, np.int32)
    self.token_bytes[self.bos_id] = 0

  def encode(self, text: str) -> list[int]:
    """The UTF-8 bytes of `text`."""
    return list(text.encode("utf-8"))

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`encode` for each text."""
    return [self.encode(text) for text in texts]

  def decode(self, ids: Sequence[int]) -> str:
    """Text from byte ids; BOS is dropped and invalid UTF-8 becomes U+FFFD."""
    return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


def default_cache_dir() -> Path:
  """$AIRA_JAX_CACHE/tokenizers if set, else ~/.cache/aira_jax/tokenizers."""
  root = os.environ.get("AIRA_JAX_CACHE")
  return Path(root) / "tokenizers" if root else Path.home() / ".cache" / "aira_jax" / "tokenizers"


def corpus_fingerprint(documents: Sequence[str]) -> str:
  """SHA-256 hex digest of the documents, in order (each length-prefixed, so boundaries count)."""
  digest = hashlib.sha256()
  for document in documents:
    data = document.encode("utf-8")
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
  return digest.hexdigest()


def _import_tokenizers():
  try:
    import tokenizers
  except ModuleNotFoundError as e:
    raise ModuleNotFoundError(f"the BPE tokenizer needs the Hugging Face `tokenizers` package: {INSTALL_HINT}") from e
  return tokenizers


class BPETokenizer:
  """Byte-level BPE with a BOS special token; build with `train_or_load` (cached) or `train`."""

  # Number of trainings run in this process; tests use it to check cache hits without timing.
  trainings = 0

  def __init__(self, hf_tokenizer, loaded_from_cache: bool = False, cache_file: Path | None = None):
    self._tokenizer = hf_tokenizer
    self.loaded_from_cache = loaded_from_cache
    self.cache_file = cache_file
    self.vocab_size = hf_tokenizer.get_vocab_size()
    bos_id = hf_tokenizer.token_to_id(BOS_TOKEN)
    if bos_id is None:
      raise ValueError(f"tokenizer has no {BOS_TOKEN} special token")
    self.bos_id = bos_id
    self.token_bytes = self._compute_token_bytes()

  def _compute_token_bytes(self) -> np.ndarray:
    # Byte-level BPE spells every token with one printable character per byte (the GPT-2 byte-to-unicode
    # table), so a token's byte length is the length of its string; special tokens count zero bytes.
    specials = {token.content for token in self._tokenizer.get_added_tokens_decoder().values()}
    lengths = np.zeros(self.vocab_size, np.int32)
    for token, token_id in self._tokenizer.get_vocab().items():
      lengths[token_id] = 0 if token in specials else len(token)
    return lengths

  @classmethod
  def train(cls, documents: Sequence[str], vocab_size: int = DEFAULT_BPE_VOCAB_SIZE) -> BPETokenizer:
    """Trains a new tokenizer on `documents` (no cache)."""
    tokenizers = _import_tokenizers()
    byte_level = tokenizers.pre_tokenizers.ByteLevel
    if vocab_size < 257:
      raise ValueError(f"vocab_size must be at least 257 (256 bytes + BOS), got {vocab_size}")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = byte_level(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS_TOKEN],
                                             initial_alphabet=byte_level.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    cls.trainings += 1
    return cls(tokenizer)

  @classmethod
  def train_or_load(cls, documents: Sequence[str], vocab_size: int = DEFAULT_BPE_VOCAB_SIZE,
                    cache_dir: str | Path | None = None) -> BPETokenizer:
    """Loads the tokenizer cached for (documents, vocab_size), or trains one and caches it."""
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = f"{corpus_fingerprint(documents)[:24]}-v{vocab_size}-r{_BPE_RECIPE_VERSION}"
    cache_file = cache_dir / f"bpe-{key}.json"
    if cache_file.is_file():
      return cls(_import_tokenizers().Tokenizer.from_file(str(cache_file)), loaded_from_cache=True,
                 cache_file=cache_file)
    trained = cls.train(documents, vocab_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_suffix(f".tmp{os.getpid()}")
    trained._tokenizer.save(str(partial))
    os.replace(partial, cache_file)  # Atomic, so a concurrent reader never sees half a file.
    trained.cache_file = cache_file
    return trained

  def encode(self, text: str) -> list[int]:
    """Token ids of `text` (no BOS added)."""
    return self._tokenizer.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`encode` for each text, in parallel inside `tokenizers`."""
    return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    """Text from token ids; special tokens are dropped."""
    return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
