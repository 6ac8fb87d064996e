"""ListOps (Nangia & Bowman 2018, as used by Long Range Arena): generator, evaluator and TSV reader/writer.

Spec followed (LRA's generator): operators MIN, MAX, MED (integer median: the mean of the two middle values
rounded down for an even count, i.e. int(np.median)), SM (sum mod 10); digits 0..9. The root has depth 1;
a node above the depth limit (10) is an operator with probability `operator_probability` = 0.25 — else a
digit — and an operator takes 2..10 arguments uniformly. NOTE: it is sometimes summarised as "a leaf with
probability 0.25"; the released LRA code draws an operator with probability 0.25 (a digit otherwise), and only
that reading gives trees of 500..2000 tokens at a useful rate (with 0.75 operators nearly every tree grows
to the depth limit with ~10^6 tokens), so this module follows the code. Token length = digits + 2 per
operator (its "[OP" and its "]"); expressions with min_len < length < max_len are kept, deduplicated.

Why vectorised: rejection at 500..2000 tokens needs millions of trees. Trees are grown as a forest, one depth
level at a time for thousands of trees at once; a tree whose partial length already reaches max_len stops
growing. Sizes, values and preorder token positions are then computed level by level with numpy, so no
Python code runs per node.

Released TSV format: header "Source\\tTarget"; Source is the expression with "( )" grouping tokens, e.g.
"( ( ( [MAX 4 ) 3 ) ] )"; both that and the plain bracketed form are read; `write_tsv` writes the plain form.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib

import numpy as np

from aira_jax.tasks.lra.tokenize import DIGIT_OFFSET, END_ID, OPERATOR_OFFSET, decode_listops, encode_listops

MIN, MAX, MED, SM = range(4)


@dataclasses.dataclass(frozen=True)
class ListOpsConfig:
  """Generator parameters (LRA defaults)."""

  min_len: int = 500
  max_len: int = 2000
  max_depth: int = 10
  max_args: int = 10
  operator_probability: float = 0.25
  batch_trees: int = 8192


def _grow_forest(rng: np.random.Generator, cfg: ListOpsConfig, num_trees: int):
  """Levels of a forest: per level (tree, parent, is_op, label, n_children); and each tree's token length."""
  levels = []
  tree = np.arange(num_trees)
  parent = np.full(num_trees, -1)
  length = np.zeros(num_trees, np.int64)
  for depth in range(1, cfg.max_depth + 1):
    n = len(tree)
    if depth < cfg.max_depth:
      is_op = rng.random(n) < cfg.operator_probability
    else:
      is_op = np.zeros(n, bool)
    label = np.where(is_op, rng.integers(0, 4, n), rng.integers(0, 10, n))
    length += np.bincount(tree, weights=np.where(is_op, 2, 1), minlength=num_trees).astype(np.int64)
    alive = length < cfg.max_len
    n_children = np.where(is_op & alive[tree], rng.integers(2, cfg.max_args + 1, n), 0)
    levels.append((tree, parent, is_op, label, n_children))
    if n_children.sum() == 0:
      break
    parent = np.repeat(np.arange(n), n_children)
    tree = tree[parent]
  return levels, length


def _median_by_parent(values, parent, n_parents, counts):
  order = np.lexsort((values, parent))
  sorted_values = values[order]
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  lo = np.clip(starts + (counts - 1) // 2, 0, max(len(values) - 1, 0))
  hi = np.clip(starts + counts // 2, 0, max(len(values) - 1, 0))
  if len(values) == 0:
    return np.zeros(n_parents, np.int64)
  return (sorted_values[lo] + sorted_values[hi]) // 2


def _evaluate_and_size(levels):
  """Bottom-up: per level, each node's value and token count (subtree size)."""
  values, sizes = [None] * len(levels), [None] * len(levels)
  child_values = child_sizes = child_parent = None
  for d in range(len(levels) - 1, -1, -1):
    _, _, is_op, label, n_children = levels[d]
    n = len(label)
    value = label.astype(np.int64)
    size = np.ones(n, np.int64)
    if child_values is not None:
      sums = np.bincount(child_parent, weights=child_values, minlength=n).astype(np.int64)
      mins = np.full(n, 10, np.int64)
      np.minimum.at(mins, child_parent, child_values)
      maxs = np.full(n, -1, np.int64)
      np.maximum.at(maxs, child_parent, child_values)
      meds = _median_by_parent(child_values, child_parent, n, n_children)
      op_value = np.choose(np.where(is_op, label, 0), [mins, maxs, meds, sums % 10])
      value = np.where(is_op, op_value, value)
      size = np.where(is_op, 2 + np.bincount(child_parent, weights=child_sizes, minlength=n).astype(np.int64), 1)
    elif is_op.any():
      size = np.where(is_op, 2, 1)
    values[d], sizes[d] = value, size
    child_values, child_sizes, child_parent = value, size, levels[d][1]
  return values, sizes


def _token_arrays(levels, sizes, keep: np.ndarray, num_trees: int) -> list[np.ndarray]:
  """Preorder ids of the trees in `keep` (top-down start positions, then one scatter)."""
  lengths = sizes[0]
  offsets = np.zeros(num_trees, np.int64)
  offsets[keep] = np.concatenate([[0], np.cumsum(lengths[keep])[:-1]])
  flat = np.zeros(int(lengths[keep].sum()), np.int32)
  start = prev_start = np.zeros(num_trees, np.int64)
  for d, (tree, parent, is_op, label, n_children) in enumerate(levels):
    if d > 0:
      excl = np.cumsum(sizes[d]) - sizes[d]
      first_child = np.concatenate([[0], np.cumsum(levels[d - 1][4])[:-1]])
      start = prev_start[parent] + 1 + excl - excl[first_child[parent]]
    take = keep[tree]
    pos = offsets[tree[take]] + start[take]
    flat[pos] = np.where(is_op[take], OPERATOR_OFFSET + label[take], DIGIT_OFFSET + label[take])
    ops = take & is_op
    flat[offsets[tree[ops]] + start[ops] + sizes[d][ops] - 1] = END_ID
    prev_start = start
  return np.split(flat, np.cumsum(lengths[keep])[:-1])


def generate(num_examples: int, seed: int = 0, config: ListOpsConfig = ListOpsConfig()):
  """`num_examples` distinct expressions as (list of int32 id arrays, int32 labels 0..9), seeded."""
  rng = np.random.default_rng(seed)
  seen: set[bytes] = set()
  tokens, labels = [], []
  while len(tokens) < num_examples:
    levels, length = _grow_forest(rng, config, config.batch_trees)
    keep = (length > config.min_len) & (length < config.max_len)
    if not keep.any():
      continue
    values, sizes = _evaluate_and_size(levels)
    for ids, value in zip(_token_arrays(levels, sizes, keep, config.batch_trees), values[0][keep]):
      key = ids.tobytes()
      if key in seen:
        continue
      seen.add(key)
      tokens.append(ids)
      labels.append(int(value))
      if len(tokens) == num_examples:
        break
  return tokens, np.asarray(labels, np.int32)


def evaluate(expression: str) -> int:
  """Value of a bracketed expression (parentheses ignored), with an explicit operand stack."""
  stack: list[list] = [[None]]
  for token in expression.split():
    if token in ("(", ")"):
      continue
    if token.startswith("["):
      stack.append([token])
    elif token == "]":
      op, *args = stack.pop()
      stack[-1].append(_apply(op, args))
    else:
      stack[-1].append(int(token))
  if len(stack) != 1 or len(stack[0]) != 2:
    raise ValueError(f"unbalanced ListOps expression {expression[:80]!r}")
  return stack[0][1]


def _apply(op: str, args: list[int]) -> int:
  if op == "[MIN":
    return min(args)
  if op == "[MAX":
    return max(args)
  if op == "[MED":
    return int(np.median(args))
  if op == "[SM":
    return sum(args) % 10
  raise ValueError(f"unknown ListOps operator {op!r}")


def write_tsv(path: str | pathlib.Path, tokens: list[np.ndarray], labels: np.ndarray) -> None:
  """Writes the released format: header "Source\\tTarget", one expression and its value per row."""
  with open(path, "w", newline="") as f:
    writer = csv.writer(f, delimiter="\t", lineterminator="\n")
    writer.writerow(["Source", "Target"])
    for ids, label in zip(tokens, labels):
      writer.writerow([decode_listops(ids), int(label)])


def read_tsv(path: str | pathlib.Path) -> tuple[list[np.ndarray], np.ndarray]:
  """Reads a ListOps TSV (header Source, Target) into (id arrays, labels); errors name the file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"ListOps TSV {path} not found (expected a file with header 'Source\\tTarget')")
  with open(path, newline="") as f:
    rows = list(csv.reader(f, delimiter="\t"))
  if not rows or [c.strip() for c in rows[0][:2]] != ["Source", "Target"]:
    raise ValueError(f"{path}: expected the header 'Source\\tTarget', got {rows[0] if rows else 'an empty file'}")
  if len(rows) == 1:
    raise ValueError(f"{path}: no examples after the header")
  tokens, labels = [], []
  for line, row in enumerate(rows[1:], start=2):
    if len(row) != 2:
      raise ValueError(f"{path}:{line}: expected 2 tab-separated columns (Source, Target), got {len(row)}")
    try:
      tokens.append(encode_listops(row[0]))
      labels.append(int(row[1]))
    except ValueError as e:
      raise ValueError(f"{path}:{line}: {e}") from None
  return tokens, np.asarray(labels, np.int32)
