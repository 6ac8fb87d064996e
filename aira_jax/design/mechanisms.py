"""A library of complete seed `model.py` sources for the LRA design tasks, with machine-editable knobs.

Each mechanism is a file in `mechanism_sources/` (package data: templates read as text, never imported by
the library). A file names itself on its first line (`# seed: <name>`) and opens with a CONFIG block of knobs
in the format of `aira_jax.design.knobs`, one per line with its allowed values:

    # --- CONFIG (knobs: ...) ---
    # WINDOW: keep keys with |q_idx - kv_idx| < WINDOW.
    WINDOW = 32  # knob: 4, 8, 16, 32, 64, 128
    # --- END CONFIG ---

and sets `HYPERPARAMETERS = {...}` (honoured only in the "configurable" setting). `mechanism_source(name,
knobs, hyperparameters)` returns the source with chosen values substituted and validated, so a heuristic agent
can vary configurations without an LLM (the built-in agent, `aira_jax.design.heuristic`, reads the same knob
lines from `seed_sources()`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import pathlib
import re
from typing import Any, Literal

from aira_jax.design import knobs as knob_lines

SOURCES = pathlib.Path(__file__).resolve().parent / "mechanism_sources"
_HYPER_LINE = re.compile(r"^HYPERPARAMETERS\s*=.*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Mechanism:
  """One seed mechanism.

  Attributes:
    name: key in `MECHANISMS`, file stem in `mechanism_sources/` and the file's `# seed:` name.
    description: one line for people and agents.
    mode: "mixer" (defines `Mixer`) or "hooks" (only `score_mod` / `mask_mod`, run in the fused kernel).
  """

  name: str
  description: str
  mode: Literal["mixer", "hooks"] = "mixer"

  @property
  def path(self) -> pathlib.Path:
    return SOURCES / f"{self.name}.py"

  @property
  def knobs(self) -> dict[str, list[Any]]:
    """Knob name -> its allowed values (Python values), read from the file."""
    return {name: [ast.literal_eval(option) for option in knob.options]
            for name, knob in knob_lines.parse_knobs(_read(self.name)).items()}


MECHANISMS: dict[str, Mechanism] = {m.name: m for m in (
    Mechanism("softmax", "bidirectional multi-head softmax attention in plain jnp, padded keys masked (seed)"),
    Mechanism("linear", "linear attention with a positive feature map, O(seq)"),
    Mechanism("local", "sliding-window attention as a mask_mod hook (fused flash-attention kernel)", "hooks"),
    Mechanism("alibi", "bidirectional ALiBi distance penalty as a score_mod hook (fused flash-attention kernel)",
              "hooks"),
    Mechanism("ssm", "bidirectional selective state-space mixer (Mamba-2 SSD scan both ways, gated)"),
)}


@functools.cache
def _read(name: str) -> str:
  return (SOURCES / f"{name}.py").read_text(encoding="utf-8")


def read_knobs(source: str) -> dict[str, Any]:
  """The knob values of `source` as Python values."""
  return {name: ast.literal_eval(knob.value) for name, knob in knob_lines.parse_knobs(source).items()}


def set_hyperparameters(source: str, hyperparameters: dict[str, Any]) -> str:
  """`source` with its `HYPERPARAMETERS = ...` line replaced (keys and ranges validated)."""
  from aira_jax.design.tasks.lra_backbone import validate_hyperparameters
  validate_hyperparameters(hyperparameters, None)
  if not _HYPER_LINE.search(source):
    raise ValueError("no `HYPERPARAMETERS = ...` line in the source")
  return _HYPER_LINE.sub(lambda _: f"HYPERPARAMETERS = {dict(hyperparameters)!r}", source, count=1)


def mechanism_source(name: str, knobs: dict[str, Any] | None = None,
                     hyperparameters: dict[str, Any] | None = None) -> str:
  """The complete `model.py` of mechanism `name` with `knobs` (Python values, each among the knob's allowed
  values; `True` is not `1`) and optionally `hyperparameters` substituted. ValueError naming the choices."""
  if name not in MECHANISMS:
    raise ValueError(f"unknown mechanism {name!r}; choose one of {', '.join(MECHANISMS)}")
  source = _read(name)
  if knobs:
    source = knob_lines.set_knobs(source, {knob: repr(value) for knob, value in knobs.items()})
  if hyperparameters is not None:
    source = set_hyperparameters(source, hyperparameters)
  return source


def seed_sources() -> dict[str, str]:
  """name -> source of every mechanism, as the built-in design agent's seeds."""
  return {name: _read(name) for name in MECHANISMS}


__all__ = ["MECHANISMS", "Mechanism", "mechanism_source", "read_knobs", "seed_sources", "set_hyperparameters"]
