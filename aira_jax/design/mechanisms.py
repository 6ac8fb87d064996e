"""A library of complete seed `model.py` sources for the LRA design tasks, with machine-editable knobs.

Each mechanism is a file in `mechanism_sources/` (package data: templates read as text, never imported by
the library). A file opens with a CONFIG block of knobs, one `NAME = literal` per line:

    # --- CONFIG (knobs: ...) ---
    WINDOW = 32  # an optional comment
    # --- END CONFIG ---

and sets `HYPERPARAMETERS = {...}` (honoured only in the "configurable" setting). `mechanism_source(name,
knobs, hyperparameters)` returns the source with chosen values substituted (validated against the allowed
values), so a heuristic agent can vary configurations without an LLM; `read_knobs` / `set_knobs` do the
same on any source that carries a CONFIG block (e.g. a candidate derived from a seed).
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import re
from typing import Any, Literal

SOURCES = pathlib.Path(__file__).resolve().parent / "mechanism_sources"
_BEGIN, _END = "# --- CONFIG", "# --- END CONFIG ---"
_KNOB_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>.*?)(?P<comment>\s+#.*)?$")
_HYPER_LINE = re.compile(r"^HYPERPARAMETERS\s*=.*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Mechanism:
  """One seed mechanism.

  Attributes:
    name: key in `MECHANISMS` and file stem in `mechanism_sources/`.
    description: one line for people and agents.
    knobs: knob name -> the allowed values (the file's own value is among them).
    mode: "mixer" (defines `Mixer`) or "hooks" (only `score_mod` / `mask_mod`, run in the fused kernel).
  """

  name: str
  description: str
  knobs: dict[str, list[Any]]
  mode: Literal["mixer", "hooks"] = "mixer"

  @property
  def path(self) -> pathlib.Path:
    return SOURCES / f"{self.name}.py"


MECHANISMS: dict[str, Mechanism] = {m.name: m for m in (
    Mechanism("softmax", "bidirectional multi-head softmax attention in plain jnp, padded keys masked (seed)",
              {"QK_NORM": [False, True]}),
    Mechanism("linear", "linear attention with a positive feature map, O(seq)",
              {"FEATURE_MAP": ["elu", "relu", "softplus"]}),
    Mechanism("local", "sliding-window attention as a mask_mod hook (fused flash-attention kernel)",
              {"WINDOW": [4, 8, 16, 32, 64, 128]}, mode="hooks"),
    Mechanism("alibi", "bidirectional ALiBi distance penalty as a score_mod hook (fused flash-attention kernel)",
              {"SLOPE_STEP": [0.25, 0.5, 1.0, 2.0]}, mode="hooks"),
    Mechanism("ssm", "bidirectional selective state-space mixer (Mamba-2 SSD scan both ways, gated)",
              {"STATE_DIM": [4, 8, 16, 32, 64], "DIRECTIONS": [1, 2], "CHUNK": [16, 32, 64]}),
)}


def _block(lines: list[str]) -> tuple[int, int]:
  """(first, last) line indices strictly inside the CONFIG block; ValueError when there is none."""
  begin = next((i for i, line in enumerate(lines) if line.startswith(_BEGIN) and line != _END), None)
  end = next((i for i, line in enumerate(lines) if line.strip() == _END), None)
  if begin is None or end is None or end < begin:
    raise ValueError(f"no CONFIG block (a line starting {_BEGIN!r} ... a line {_END!r}) in the source")
  return begin + 1, end


def read_knobs(source: str) -> dict[str, Any]:
  """The knob values of a source's CONFIG block, as Python values."""
  lines = source.splitlines()
  first, last = _block(lines)
  knobs = {}
  for line in lines[first:last]:
    match = _KNOB_LINE.match(line.strip())
    if match:
      knobs[match["name"]] = ast.literal_eval(match["value"])
  return knobs


def set_knobs(source: str, knobs: dict[str, Any]) -> str:
  """`source` with the named knobs of its CONFIG block set (each written as `repr(value)`, comments kept)."""
  lines = source.splitlines(keepends=True)
  first, last = _block([line.rstrip("\n") for line in lines])
  todo = dict(knobs)
  for i in range(first, last):
    match = _KNOB_LINE.match(lines[i].strip())
    if match and match["name"] in todo:
      lines[i] = f"{match['name']} = {todo.pop(match['name'])!r}{match['comment'] or ''}\n"
  if todo:
    raise ValueError(f"knob(s) {sorted(todo)} not in the source's CONFIG block (it has {sorted(read_knobs(source))})")
  return "".join(lines)


def set_hyperparameters(source: str, hyperparameters: dict[str, Any]) -> str:
  """`source` with its `HYPERPARAMETERS = ...` line replaced (keys and ranges validated)."""
  from aira_jax.design.tasks.lra_backbone import validate_hyperparameters
  validate_hyperparameters(hyperparameters, None)
  if not _HYPER_LINE.search(source):
    raise ValueError("no `HYPERPARAMETERS = ...` line in the source")
  return _HYPER_LINE.sub(lambda _: f"HYPERPARAMETERS = {dict(hyperparameters)!r}", source, count=1)


def mechanism_source(name: str, knobs: dict[str, Any] | None = None,
                     hyperparameters: dict[str, Any] | None = None) -> str:
  """The complete `model.py` of mechanism `name` with `knobs` (each among the mechanism's allowed values) and
  optionally `hyperparameters` substituted. ValueError naming the choices otherwise."""
  if name not in MECHANISMS:
    raise ValueError(f"unknown mechanism {name!r}; choose one of {', '.join(MECHANISMS)}")
  mechanism = MECHANISMS[name]
  for knob, value in (knobs or {}).items():
    if knob not in mechanism.knobs:
      raise ValueError(f"mechanism {name!r} has no knob {knob!r}; its knobs: {', '.join(mechanism.knobs)}")
    allowed = mechanism.knobs[knob]
    if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
      raise ValueError(f"{name}.{knob}={value!r} is not allowed; choose one of {allowed}")
  source = mechanism.path.read_text(encoding="utf-8")
  if knobs:
    source = set_knobs(source, knobs)
  if hyperparameters is not None:
    source = set_hyperparameters(source, hyperparameters)
  return source


__all__ = ["MECHANISMS", "Mechanism", "mechanism_source", "read_knobs", "set_hyperparameters", "set_knobs"]
