"""The layout families of the scale stage: what the search found, extrapolated, and the published baselines.

Baselines at a target depth (layers; a Llama block is two layers, attention then MLP):
- "llama": alternating attention and MLP, "AMAM..." (Llama 3.2's layout).
- "composer": Composer's 16-layer pattern "2A+5M+2A+3M+1A+3M", stretched to the depth.
- "composer6": Composer's 6-layer pattern "2A+4M", stacked to the depth.
- "nemotron": a Nemotron-H-like hybrid with its MoE replaced by MLPs: mixer and MLP layers alternate
  ("xMxM..."); the mixers are Mamba-2 (S) except about one in seven, which are attention, spread evenly with
  none at the bottom (Nemotron-H 8B has 4 attention layers among 28 mixers).

Found families are named "found-stretch" / "found-stack": the aggregated search layout extrapolated by
that method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aira_jax.compose.extrapolate import extrapolate, stack, stretch
from aira_jax.layout import Layout

COMPOSER_16 = "2A+5M+2A+3M+1A+3M"
COMPOSER_6 = "2A+4M"
NEMOTRON_ATTENTION_SHARE = 4 / 28
BASELINES = ("llama", "composer", "composer6", "nemotron")


def llama_layout(depth: int) -> Layout:
  """"AMAM..." of `depth` layers (an odd depth ends with attention)."""
  return Layout(tuple("AM"[i % 2] for i in range(depth)))


def nemotron_layout(depth: int) -> Layout:
  """The Nemotron-H-like hybrid of `depth` layers described in the module docstring."""
  mixers = (depth + 1) // 2
  attention = max(1, round(mixers * NEMOTRON_ATTENTION_SHARE))
  slots = {min(mixers - 1, int((i + 1) * mixers / (attention + 1))) for i in range(attention)}
  symbols = []
  for mixer in range(mixers):
    symbols += ["A" if mixer in slots else "S", "M"]
  return Layout(tuple(symbols[:depth]))


def baseline_layout(name: str, depth: int) -> Layout:
  """The baseline `name` (one of BASELINES) at `depth` layers."""
  if name == "llama":
    return llama_layout(depth)
  if name == "composer":
    return stretch(COMPOSER_16, depth)
  if name == "composer6":
    return stack(COMPOSER_6, depth)
  if name == "nemotron":
    return nemotron_layout(depth)
  raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def scale_families(found: Layout | None, methods: Sequence[str], baselines: Sequence[str],
                   depth: int) -> dict[str, Layout]:
  """Family name -> layout at `depth`: the found layout extrapolated by each method, then the baselines."""
  families: dict[str, Layout] = {}
  if found is not None:
    for method in methods:
      families[f"found-{method}"] = extrapolate(found, depth, method)
  for name in baselines:
    families[name] = baseline_layout(name, depth)
  return families


def space_of(families: Mapping[str, Layout]) -> str:
  """The primitives the families use, in alphabet order (the switch program's space)."""
  used = {symbol for layout in families.values() for symbol in layout}
  return "".join(sorted(used))
