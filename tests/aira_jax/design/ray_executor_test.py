"""Design on Ray (aira_jax.design.remote) against the local backend, on a private Ray instance: a tiny search
gives the same candidates and trusted metrics, each candidate ran under bwrap on a worker, and its files and
logs came back to the driver's run directory."""

import json

import pytest
from ray_testing import DESIGN_TINY, RAY

from aira_jax.agents.journal import Journal
from aira_jax.design.bubblewrap import bwrap_problem
from aira_jax.design.cli import main
from aira_jax.results.store import ResultStore

TINY = DESIGN_TINY


def _outcome(run):
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    rows = {row.key: (row.metric, row.is_buggy, row.details["metrics"], row.details["stages"].keys())
            for row in store.evaluations()}
    isolation = {row.details["isolation"] for row in store.evaluations()}
  nodes = [(n.payload, n.metric) for n in Journal.load(run / "journal.jsonl").nodes]
  return rows, nodes, isolation


@RAY
def test_a_tiny_design_search_on_ray_matches_the_local_search(ray_local, tmp_path):
  if bwrap_problem():
    pytest.skip(f"bwrap unusable here: {bwrap_problem()}")
  assert main([f"run_dir={tmp_path}", "run_id=local", *TINY]) == 0
  assert main([f"run_dir={tmp_path}", "run_id=ray", *TINY, "executor.backend=ray", "executor.max_concurrent=1"]) == 0
  local_rows, local_nodes, _ = _outcome(tmp_path / "local")
  ray_rows, ray_nodes, isolation = _outcome(tmp_path / "ray")
  assert ray_nodes == local_nodes and ray_rows == local_rows
  assert isolation == {"bwrap"}
  scored = [key for key, (metric, buggy, _, _) in ray_rows.items() if not buggy]
  assert scored
  for key in ray_rows:  # what the worker kept of each candidate is in the driver's run directory
    folder = tmp_path / "ray" / "candidates" / key
    assert {p.name for p in folder.iterdir()} >= {"model.py", "stdout.txt", "stderr.txt", "records.jsonl",
                                                   "result.json"}
    result = json.loads((folder / "result.json").read_text())
    assert result["isolation"] == "bwrap" and result["metrics"] == ray_rows[key][2]
    local_folder = tmp_path / "local" / "candidates" / key
    assert (folder / "records.jsonl").read_text().count("\n") == (local_folder / "records.jsonl").read_text().count("\n")
