"""Reading a text corpus from user files: a directory (or one file) of .txt, .jsonl and .parquet files.

The language-modelling task trains on whatever text the user points it at, so this module turns a path into a
list of documents (strings) in a stable order: files are visited sorted by their path relative to the corpus
root, and documents keep their order inside each file. The same files therefore always give the same list,
which the pinned validation split and the tokenizer cache rely on.

Formats:
- .txt: UTF-8 text; by default split into documents at blank lines (`txt_split="blank_line"`), or one document
  per file (`txt_split="file"`).
- .jsonl: one JSON object per non-empty line; the document is the string under `text_field` ("text").
- .parquet: the string column `text_field` ("text"), as in the climbmix shards autoresearch trains on; read with
  pyarrow, imported only when a .parquet file is met (extra `aira_jax[text]`).

Bad input raises an error that names the path and what was expected: FileNotFoundError for a missing path,
CorpusError (a ValueError) for no supported files, a missing field or column, undecodable bytes, bad JSON or an
empty corpus. Whitespace-only documents are dropped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
TxtSplit = Literal["blank_line", "file"]
_BLANK_LINES = re.compile(r"\n[ \t\r]*\n")


class CorpusError(ValueError):
  """A corpus path holds no usable documents, or a file in it is not in the expected format."""


def corpus_files(path: str | Path) -> list[Path]:
  """The supported files at `path` (itself if a file), sorted by path relative to `path`."""
  path = Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"corpus path {str(path)!r} does not exist; expected a directory or a "
                            f"{'/'.join(SUPPORTED_SUFFIXES)} file")
  if path.is_file():
    if path.suffix not in SUPPORTED_SUFFIXES:
      raise CorpusError(f"corpus file {str(path)!r} has unsupported suffix {path.suffix!r}; expected one of "
                        f"{', '.join(SUPPORTED_SUFFIXES)}")
    return [path]
  files = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix in SUPPORTED_SUFFIXES),
                 key=lambda p: p.relative_to(path).as_posix())
  if not files:
    raise CorpusError(f"corpus directory {str(path)!r} holds no supported files; expected files ending in "
                      f"{', '.join(SUPPORTED_SUFFIXES)}")
  return files


def read_documents(path: str | Path, text_field: str = "text", txt_split: TxtSplit = "blank_line",
                   max_documents: int | None = None) -> list[str]:
  """Every non-empty document under `path`, in stable order; at most `max_documents` if given."""
  documents: list[str] = []
  for file in corpus_files(path):
    for document in _read_file(file, text_field, txt_split):
      if document.strip():
        documents.append(document)
        if max_documents is not None and len(documents) >= max_documents:
          return documents
  if not documents:
    raise CorpusError(f"corpus at {str(path)!r} is empty: its files hold no non-whitespace text")
  return documents


def _read_file(file: Path, text_field: str, txt_split: TxtSplit) -> list[str]:
  if file.suffix == ".txt":
    return split_text(_read_utf8(file), txt_split)
  if file.suffix == ".jsonl":
    return _read_jsonl(file, text_field)
  return _read_parquet(file, text_field)


def split_text(text: str, txt_split: TxtSplit) -> list[str]:
  """`text` as documents: paragraphs separated by blank lines, or the whole text as one document."""
  if txt_split == "file":
    return [text.strip()]
  if txt_split == "blank_line":
    return [part.strip() for part in _BLANK_LINES.split(text.replace("\r\n", "\n"))]
  raise ValueError(f"txt_split must be 'blank_line' or 'file', got {txt_split!r}")


def _read_utf8(file: Path) -> str:
  data = file.read_bytes()
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise CorpusError(f"corpus file {str(file)!r} is not valid UTF-8 text (bad byte at offset {e.start}); "
                      "expected UTF-8 encoded text") from e


def _read_jsonl(file: Path, text_field: str) -> list[str]:
  documents = []
  for line_number, line in enumerate(_read_utf8(file).splitlines(), start=1):
    if not line.strip():
      continue
    where = f"{str(file)!r} line {line_number}"
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise CorpusError(f"corpus file {where} is not valid JSON ({e.msg}); expected one JSON object per line") from e
    if not isinstance(record, dict) or text_field not in record:
      keys = sorted(record) if isinstance(record, dict) else type(record).__name__
      raise CorpusError(f"corpus file {where} has no field {text_field!r} (found {keys}); expected a JSON "
                        f"object with a string field {text_field!r} (set text_field to choose another)")
    value = record[text_field]
    if not isinstance(value, str):
      raise CorpusError(f"corpus file {where}: field {text_field!r} is {type(value).__name__}, expected a string")
    documents.append(value)
  return documents


def _read_parquet(file: Path, text_field: str) -> list[str]:
  try:
    import pyarrow.parquet as pq
  except ModuleNotFoundError as e:
    raise ModuleNotFoundError(f"reading {str(file)!r} needs pyarrow: pip install 'aira_jax[text]'") from e
  try:
    names = pq.read_schema(file).names
  except Exception as e:  # pyarrow raises ArrowInvalid and friends for files that are not parquet.
    raise CorpusError(f"corpus file {str(file)!r} could not be read as parquet: {e}") from e
  if text_field not in names:
    raise CorpusError(f"corpus file {str(file)!r} has no column {text_field!r} (columns: {names}); expected a "
                      f"string column {text_field!r} (set text_field to choose another)")
  column = pq.read_table(file, columns=[text_field]).column(text_field)
  values = column.to_pylist()
  bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
  if bad is not None:
    raise CorpusError(f"corpus file {str(file)!r}: column {text_field!r} holds {type(bad).__name__}, expected "
                      "strings")
  return [v for v in values if v is not None]
