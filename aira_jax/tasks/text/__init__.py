"""The text language-modelling task: corpus reading, byte / BPE tokenizers, pinned splits, BOS-aligned packing
and val_bpb. Importing this package registers "text/bytes" and "text/bpe" (see task.py for options).

The `tokenizers` and `pyarrow` packages are needed only for BPE and .parquet files (extra aira_jax[text]); the
default corpus only when no path is given (extra aira_jax[corpus]).
"""

from aira_jax.tasks.text.bpb import bpb_totals, token_nll, val_bpb, val_bpb_from_logits, val_bpb_jax
from aira_jax.tasks.text.corpus import CorpusError, corpus_files, read_documents
from aira_jax.tasks.text.default_corpus import default_corpus_available, default_corpus_documents
from aira_jax.tasks.text.packing import assign_splits, pack_documents, split_of
from aira_jax.tasks.text.task import TextTask
from aira_jax.tasks.text.tokenizer import BPETokenizer, ByteTokenizer, corpus_fingerprint

__all__ = ["BPETokenizer", "ByteTokenizer", "CorpusError", "TextTask", "assign_splits", "bpb_totals",
           "corpus_files", "corpus_fingerprint", "default_corpus_available", "default_corpus_documents",
           "pack_documents", "read_documents", "split_of", "token_nll", "val_bpb", "val_bpb_from_logits",
           "val_bpb_jax"]
