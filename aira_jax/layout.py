"""`Layout`: the architecture searched by AIRA-Compose, a stack of layers each holding one primitive.

Two text forms are accepted, whitespace anywhere is ignored:
  per-layer     "AMSMAM"            one symbol per layer;
  run-length    "2A+5M+2A+3M"       terms joined by "+", each an optional count and one or more symbols
                                    ("3AM" = "AMAMAM"); per-layer text is a single term without a count.
The canonical text is the per-layer form ("AAMMMMMAAMMM"); `run_length()` gives the compact form.
Layouts compare and hash by their canonical text. Symbols come from `aira_jax.primitives`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from aira_jax import primitives

MAX_DEPTH = 1024
"""Default limit on layers; a deeper text is refused before it is expanded."""

_TERM = re.compile(r"(\d*)([A-Za-z]*)")


@dataclasses.dataclass(frozen=True)
class Layout:
  """An immutable stack of primitive symbols, bottom (next to the embedding) first."""

  symbols: tuple[str, ...]

  def __post_init__(self):
    if isinstance(self.symbols, str):
      object.__setattr__(self, "symbols", tuple(self.symbols))
    if not self.symbols:
      raise ValueError("a layout needs at least one layer")
    for i, symbol in enumerate(self.symbols):
      if symbol not in primitives.alphabet():
        raise ValueError(f"layer {i}: unknown primitive {symbol!r}; allowed: {primitives.alphabet()}")

  @classmethod
  def parse(cls, text: str, *, space: str | Iterable[str] | None = None, max_depth: int = MAX_DEPTH) -> Layout:
    """Parses per-layer or run-length text.

    Args:
      text: e.g. "AMAM", "2A+5M+2A+3M", " A M S ".
      space: allowed symbols ("AM", "{A,M,S}", ...); None allows the whole alphabet.
      max_depth: refuse layouts with more layers than this.

    Raises:
      ValueError naming the character position and what is allowed there.
    """
    if not isinstance(text, str):
      raise ValueError(f"layout text must be a string, got {type(text).__name__}")
    allowed = primitives.normalize_space(space)
    allowed_text = "".join(s for s in primitives.alphabet() if s in allowed)
    compact = [(i, c) for i, c in enumerate(text) if not c.isspace()]
    if not compact:
      raise ValueError("empty layout text; write one symbol per layer (e.g. 'AMAM') or runs (e.g. '2A+2M')")
    chars = "".join(c for _, c in compact)
    positions = [i for i, _ in compact] + [len(text)]
    symbols: list[str] = []
    start = 0
    for term in chars.split("+"):
      where = positions[start]
      if not term:
        raise ValueError(f"position {where}: empty term in {text!r}; expected a count and symbols like '2A'")
      match = _TERM.match(term)
      count_text, group = match.groups()
      if match.end() < len(term):
        bad = match.end()
        what = "a count goes before the symbols of its term" if term[bad].isdigit() else "unexpected character"
        raise ValueError(f"position {positions[start + bad]}: {what} {term[bad]!r} in {text!r}; "
                         f"write terms like '2A' or 'AMS' joined by '+' (symbols allowed: {allowed_text})")
      if not group:
        raise ValueError(f"position {where}: term {term!r} has no primitive symbol; allowed: {allowed_text}")
      count = int(count_text) if count_text else 1
      if count < 1:
        raise ValueError(f"position {where}: count must be at least 1 in term {term!r}")
      for k, symbol in enumerate(group):
        pos = positions[start + len(count_text) + k]
        if symbol not in primitives.alphabet():
          hint = f" (did you mean {symbol.upper()!r}?)" if symbol.upper() in allowed else ""
          raise ValueError(f"position {pos}: unknown primitive {symbol!r}{hint}; allowed: {allowed_text}")
        if symbol not in allowed:
          raise ValueError(f"position {pos}: primitive {symbol!r} is outside the search space {allowed_text}")
      if len(symbols) + count * len(group) > max_depth:
        raise ValueError(f"position {where}: layout is deeper than the limit of {max_depth} layers")
      symbols.extend(group * count)
      start += len(term) + 1
    return cls(tuple(symbols))

  @classmethod
  def from_runs(cls, runs: Iterable[tuple[str, int]]) -> Layout:
    """Builds a layout from (symbol, length) pairs."""
    symbols: list[str] = []
    for symbol, length in runs:
      if length < 1:
        raise ValueError(f"run of {symbol!r} has length {length}; runs are at least 1 long")
      symbols.extend([symbol] * length)
    return cls(tuple(symbols))

  # Text forms.
  def __str__(self) -> str:
    return "".join(self.symbols)

  @property
  def text(self) -> str:
    """The canonical per-layer text."""
    return str(self)

  def run_length(self) -> str:
    """Compact text, e.g. "2A+5M+2A+3M" (a run of one is written "1A")."""
    return "+".join(f"{length}{symbol}" for symbol, length in self.runs())

  def __repr__(self) -> str:
    return f"Layout({self.run_length()!r})"

  # Structure.
  def runs(self) -> tuple[tuple[str, int], ...]:
    """Maximal runs of equal symbols as (symbol, length), bottom first."""
    out: list[tuple[str, int]] = []
    for symbol in self.symbols:
      if out and out[-1][0] == symbol:
        out[-1] = (symbol, out[-1][1] + 1)
      else:
        out.append((symbol, 1))
    return tuple(out)

  @property
  def depth(self) -> int:
    return len(self.symbols)

  def __len__(self) -> int:
    return len(self.symbols)

  def __iter__(self):
    return iter(self.symbols)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return Layout(self.symbols[index])
    return self.symbols[index]

  def counts(self) -> dict[str, int]:
    """Layers per symbol, every registered symbol present (zero if unused), alphabet order."""
    return {s: self.symbols.count(s) for s in primitives.alphabet()}

  def ratios(self) -> dict[str, float]:
    """Fraction of layers per symbol (sums to 1)."""
    return {s: n / self.depth for s, n in self.counts().items()}

  def ratio_text(self) -> str:
    """The symbol counts as "7A:9M" (symbols that occur only)."""
    return ":".join(f"{n}{s}" for s, n in self.counts().items() if n)

  def space(self) -> frozenset[str]:
    """The set of symbols used."""
    return frozenset(self.symbols)

  def check_space(self, space: str | Iterable[str]) -> None:
    """Raises ValueError naming the first layer whose primitive is outside `space`."""
    allowed = primitives.normalize_space(space)
    for i, symbol in enumerate(self.symbols):
      if symbol not in allowed:
        raise ValueError(f"layer {i}: primitive {symbol!r} is outside the search space {''.join(sorted(allowed))}")


def as_layout(value: Layout | str) -> Layout:
  """Accepts a Layout or its text."""
  return value if isinstance(value, Layout) else Layout.parse(value)
