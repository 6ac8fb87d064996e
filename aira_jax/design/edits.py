"""Reading code an LLM wrote for a design task: a whole file, or SEARCH/REPLACE edits of the parent's file.

Whole file: exactly one fenced ```python block (`aira_jax.agents.replies.extract_code_block`'s rule).
Edits: one or more blocks of the form

    <<<<<<< SEARCH
    lines copied exactly from the current file
    =======
    the lines that replace them
    >>>>>>> REPLACE

applied in order; each SEARCH text must occur exactly once in the file as it stands when the edit is applied.
Edits cost fewer tokens than a whole file and show the change plainly; a block that does not match raises
`ReplyParseError` with a reason the model can act on (the repair round-trip quotes it back).
The plan is the first non-empty line of the reply outside code blocks and edit blocks.
"""

from __future__ import annotations

import re

from aira_jax.agents.replies import ReplyParseError, code_blocks, extract_code_block

_EDIT = re.compile(r"<{5,9} SEARCH[ \t]*\n(?P<search>.*?)\n?={5,9}[ \t]*\n(?P<replace>.*?)\n?>{5,9} REPLACE",
                   re.DOTALL)

WHOLE_FILE_FORMAT = ("Answer with one line stating your plan, then the complete file in ONE ```python code "
                     "block (no other code blocks).")
EDITS_FORMAT = ("Answer with one line stating your plan, then one or more edits of the current file, each exactly:\n"
                "<<<<<<< SEARCH\n(lines copied exactly from the current file)\n=======\n(the new lines)\n"
                ">>>>>>> REPLACE\nEach SEARCH text must match the file exactly once. For a new file (no current "
                "file), give the complete file in one ```python block instead.")


def plan_of(text: str) -> str:
  """The first non-empty line outside code and edit blocks ("Plan:" prefix dropped), at most 300 chars."""
  stripped = _EDIT.sub("", text)
  inside = False
  for line in stripped.splitlines():
    if line.lstrip().startswith(("```", "~~~")):
      inside = not inside
      continue
    if not inside and line.strip():
      return re.sub(r"^\s*(\*\*)?plan(\*\*)?\s*:\s*", "", line.strip(), flags=re.IGNORECASE)[:300]
  return ""


def apply_edits(source: str, text: str) -> str:
  """`source` with the reply's SEARCH/REPLACE edits applied in order; ReplyParseError when there are none or
  one does not match exactly once."""
  edits = list(_EDIT.finditer(text))
  if not edits:
    raise ReplyParseError("no SEARCH/REPLACE edit found; use the exact <<<<<<< SEARCH / ======= / >>>>>>> REPLACE "
                          "format, or send the whole file in one ```python block")
  for number, edit in enumerate(edits, start=1):
    search, replace = edit.group("search"), edit.group("replace")
    count = source.count(search) if search else 0
    if count != 1:
      where = "does not occur in" if count == 0 else f"occurs {count} times in"
      raise ReplyParseError(f"edit {number}: its SEARCH text {where} the current file; copy the lines exactly "
                            "(including indentation) and make them unique")
    source = source.replace(search, replace, 1)
  return source


def code_from_reply(text: str, parent_source: str | None, *, edits: bool) -> str:
  """The new file: the edits applied to `parent_source` when `edits` and the reply has edit blocks, else the
  one python code block of the reply."""
  if edits and parent_source is not None and _EDIT.search(text):
    return apply_edits(parent_source, text)
  if not code_blocks(text):
    hint = " or SEARCH/REPLACE edits" if edits and parent_source is not None else ""
    raise ReplyParseError(f"no code found; send the complete file in one ```python block{hint}")
  return extract_code_block(text, "python")
