"""`Journal`: the append-only record of a search, optionally backed by a JSONL file that survives crashes.

Policies read it (without the agents' analyses, `candidates_only`) to pick the next action, memory builders
read it to write prompts, reports read it after the run. Each appended node becomes one line of the file,
flushed and fsync'd before `append` returns, so a crash loses at most the line being written; `Journal.load`
drops such a truncated last line and resumes.
`Node` lives in `node.py` and is re-exported here.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
import warnings
from collections.abc import Iterator

from aira_jax.agents.node import OPERATORS, PARENT_COUNTS, Node, new_node_id, trim_excerpt

__all__ = ["Journal", "Node", "OPERATORS", "PARENT_COUNTS", "new_node_id", "trim_excerpt"]


class Journal:
  """Nodes in the order they were appended, with the queries search policies need.

  Appends are thread-safe (several agents may share one journal). Parents must be appended before their
  children and ids must be unique, so the journal is always a forest (a DAG once crossovers appear).
  """

  def __init__(self, path: str | os.PathLike | None = None):
    """Starts an empty journal; with `path`, every append is also written there (the file must be new or
    empty: use `Journal.load` to resume an existing one)."""
    self._path = pathlib.Path(path) if path is not None else None
    self._lock = threading.Lock()
    self._nodes: list[Node] = []
    self._by_id: dict[str, Node] = {}
    self._children: dict[str, list[Node]] = {}
    if self._path is not None and self._path.exists() and self._path.stat().st_size > 0:
      raise ValueError(f"{self._path} already holds a journal; use Journal.load to resume it")
    if self._path is not None:
      self._path.parent.mkdir(parents=True, exist_ok=True)

  @property
  def path(self) -> pathlib.Path | None:
    """The backing JSONL file, or None for an in-memory journal."""
    return self._path

  @classmethod
  def load(cls, path: str | os.PathLike) -> Journal:
    """Reads a JSONL journal (a missing file gives an empty journal bound to `path`).

    A last line that does not parse is what a crash mid-write leaves: it is skipped with a warning and the
    file is truncated to the end of the last good line, so later appends stay valid JSONL. A bad line
    anywhere else is corruption: ValueError naming its (1-based) line number.
    """
    path = pathlib.Path(path)
    journal = cls()
    journal._path = path
    if not path.exists():
      path.parent.mkdir(parents=True, exist_ok=True)
      return journal
    data = path.read_bytes()
    lines = data.split(b"\n")
    has_final_newline = lines[-1] == b""
    if has_final_newline:
      lines.pop()
    good_end = 0  # byte offset just past the last good line's newline
    for number, raw in enumerate(lines, start=1):
      is_last = number == len(lines)
      try:
        record = json.loads(raw.decode("utf-8"))
      except ValueError as e:  # JSONDecodeError and UnicodeDecodeError: the line was cut short
        if not is_last:
          raise ValueError(f"{path}: line {number} of {len(lines)} is corrupt ({e}); refusing to resume") from e
        warnings.warn(f"{path}: dropping truncated last line {number} ({e}); resuming after line {number - 1}",
                      stacklevel=2)
        with open(path, "r+b") as f:
          f.truncate(good_end)
          f.flush()
          os.fsync(f.fileno())
        return journal
      try:
        journal._add(Node.from_dict(record))
      except (ValueError, TypeError) as e:  # well-formed JSON but not a valid node: corruption, not truncation
        raise ValueError(f"{path}: line {number} of {len(lines)} is not a valid node ({e})") from e
      good_end += len(raw) + 1
    if not has_final_newline and lines:
      with open(path, "ab") as f:  # the last record parsed but its newline was lost
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return journal

  def _add(self, node: Node) -> None:
    if node.id in self._by_id:
      raise ValueError(f"duplicate node id {node.id!r}")
    missing = [p for p in node.parent_ids if p not in self._by_id]
    if missing:
      raise ValueError(f"node {node.id}: unknown parent id(s) {missing}; append parents first")
    self._nodes.append(node)
    self._by_id[node.id] = node
    self._children[node.id] = []
    for parent in dict.fromkeys(node.parent_ids):
      self._children[parent].append(node)

  def append(self, node: Node) -> Node:
    """Adds `node` (and writes it, fsync'd, when file-backed); returns it. Thread-safe.

    Raises ValueError for a duplicate id or an unknown parent; nothing is written then.
    """
    line = (node.to_json() + "\n").encode("utf-8")
    with self._lock:
      self._add(node)
      if self._path is not None:
        try:
          with open(self._path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        except OSError:
          self._remove_last()
          raise
    return node

  def _remove_last(self) -> None:
    node = self._nodes.pop()
    del self._by_id[node.id]
    del self._children[node.id]
    for parent in dict.fromkeys(node.parent_ids):
      self._children[parent].pop()

  # Queries. Each returns nodes in append order unless it says otherwise.

  @property
  def nodes(self) -> list[Node]:
    """Every node (a copy of the list)."""
    return list(self._nodes)

  def __len__(self) -> int:
    return len(self._nodes)

  def __iter__(self) -> Iterator[Node]:
    return iter(list(self._nodes))

  def __contains__(self, node_id: object) -> bool:
    return node_id in self._by_id

  def get(self, node_id: str) -> Node:
    """The node with this id; KeyError naming it if absent."""
    try:
      return self._by_id[node_id]
    except KeyError:
      raise KeyError(f"no node {node_id!r} in the journal") from None

  def children(self, node_id: str) -> list[Node]:
    """Nodes naming `node_id` among their parents (a crossover child is a child of both parents)."""
    self.get(node_id)
    return list(self._children[node_id])

  def drafts(self) -> list[Node]:
    """Nodes made by the draft operator (the roots of the search tree)."""
    return [n for n in self._nodes if n.operator == "draft"]

  def analyses(self) -> list[Node]:
    """Nodes made by the analyze operator: agents' written reviews, never evaluated (node.py)."""
    return [n for n in self._nodes if n.is_analysis]

  def candidates_only(self) -> Journal:
    """The journal without its analyses, which is what search policies read: itself when it holds none, else an
    in-memory copy of the other nodes (no node names an analysis as a parent, so the copy is a valid journal;
    appends to it are not saved)."""
    nodes = self.nodes
    if not any(n.is_analysis for n in nodes):
      return self
    view = Journal()
    for node in nodes:
      if not node.is_analysis:
        view._add(node)
    return view

  def good_nodes(self) -> list[Node]:
    """Nodes that are not buggy and have a metric."""
    return [n for n in self._nodes if n.is_good]

  def buggy_nodes(self) -> list[Node]:
    """Nodes marked buggy."""
    return [n for n in self._nodes if n.is_buggy]

  def buggy_leaves(self) -> list[Node]:
    """Buggy nodes that no node names as a parent yet (candidates for a debug step)."""
    return [n for n in self._nodes if n.is_buggy and not self._children[n.id]]

  def by_agent(self, agent_id: str) -> list[Node]:
    """Nodes made by one agent."""
    return [n for n in self._nodes if n.agent_id == agent_id]

  @property
  def lower_is_better(self) -> bool:
    """The direction shared by the scored nodes (False when none is scored).

    Raises ValueError if scored nodes disagree: their metrics could not be ranked together.
    """
    directions = {n.lower_is_better for n in self._nodes if n.is_good}
    if len(directions) > 1:
      raise ValueError("scored nodes disagree on lower_is_better; their metrics cannot be ranked together")
    return directions.pop() if directions else False

  def best(self, k: int = 1) -> list[Node]:
    """The k best good nodes, best first; ties keep append order. Fewer if fewer are good."""
    sign = 1.0 if self.lower_is_better else -1.0
    ranked = sorted(self.good_nodes(), key=lambda n: sign * n.metric)
    return ranked[:k]

  def debug_depth(self, node_id: str) -> int:
    """How many debug steps in a row led to this node.

    Walk from the node up through parents while the current node's operator is "debug", counting each
    debug node, the node itself included; stop at the first non-debug node (not counted). So a draft or an
    improve node has depth 0, a debug of a draft has 1, a debug of that debug has 2. A debug node's one
    parent is its only path, so the count is well defined.
    """
    depth = 0
    node = self.get(node_id)
    while node.operator == "debug":
      depth += 1
      node = self._by_id[node.parent_ids[0]]
    return depth
