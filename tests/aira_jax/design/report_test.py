"""The design report: its verdict on the leaderboard (which leaders are within 2 standard errors of the best), the
baselines next to it (majority-class rate, uniform chance), and the best-so-far plot, from a constructed run."""

import sys
import types

import pytest

from aira_jax.agents.journal import Journal, Node
from aira_jax.design.config import DesignConfig
from aira_jax.design.evaluator import code_key
from aira_jax.design.report import _baselines, _plots, _separation, write_report
from aira_jax.results import plots
from aira_jax.results.run_files import RunFiles
from aira_jax.results.store import ResultStore


def _board(scores_and_errors):
  nodes, rows = [], {}
  for i, (score, se) in enumerate(scores_and_errors):
    code = f"# candidate {i}\n"
    nodes.append(types.SimpleNamespace(payload=code, metric=score))
    rows[code_key(code)] = types.SimpleNamespace(details={"metrics": {"val_accuracy_se": se}})
  return nodes, rows


def test_leaders_within_two_standard_errors_are_called_tied():
  # Differences 0.02 and 0.10 against 2 * sqrt(2) * 0.02 = 0.0566: the first is a tie, the second is not.
  nodes, rows = _board([(0.50, 0.02), (0.48, 0.02), (0.40, 0.02)])
  [sentence, _] = _separation(nodes, rows, "val_accuracy")
  assert sentence.startswith("1 of the other 2 candidates are within 2 standard errors of the best")


def test_a_clear_leader_and_missing_errors():
  nodes, rows = _board([(0.60, 0.01), (0.50, 0.01)])
  assert _separation(nodes, rows, "val_accuracy")[0].startswith("The best candidate is ahead of every other")
  nodes, rows = _board([(0.60, None), (0.50, 0.01)])
  assert _separation(nodes, rows, "val_accuracy") == []  # no se (e.g. autoresearch): no verdict is invented


def _rows(*metrics, buggy=()):
  return {f"key{i}": types.SimpleNamespace(details={"metrics": m}, is_buggy=i in buggy) for i, m in enumerate(metrics)}


def test_baselines_give_the_recorded_majority_rate_and_uniform_chance():
  rows = _rows({"val_accuracy": 0.4, "chance": 0.136, "test_chance": 0.14}, {"val_accuracy": 0.3, "chance": 0.136},
               {})
  [sentence, _] = _baselines("lra-listops", rows, "val_accuracy")
  assert sentence == ("Baselines on the validation labels: majority-class rate 0.1360 (always answering the "
                      "training labels' most common class), uniform chance 0.1000 (1 / 10 classes); a val_accuracy "
                      "at or below these learned nothing. On the test labels the majority-class rate is 0.1400.")
  # a resumed run whose validation set changed shows the range; a binary task has uniform chance 1/2
  [sentence, _] = _baselines("lra-text", _rows({"chance": 0.52}, {"chance": 0.5}), "val_accuracy")
  assert "majority-class rate 0.5000-0.5200" in sentence and "uniform chance 0.5000 (1 / 2 classes)" in sentence
  assert "test labels" not in sentence


def test_baselines_only_where_known():
  [sentence, _] = _baselines("lra-image", _rows({}, buggy={0}), "val_accuracy")  # nothing scored yet
  assert sentence.startswith("Baselines on the validation labels: uniform chance 0.1000 (1 / 10 classes);")
  assert _baselines("autoresearch", _rows({"val_bpb": 1.2}), "val_bpb") == []  # no classes, no chance recorded


def _constructed_run(root):
  """A design run of two agents on lra-listops: three nodes over 3 minutes, two scored candidates, one failed."""
  files = RunFiles(root)
  journal = Journal(files.journal)
  start = 1_700_000_000.0
  scored = [("a0", "draft", "# seed: a\n", 0.30, 0.0), ("a1", "draft", "# seed: b\n", 0.45, 180.0)]
  for i, (agent, operator, code, metric, offset) in enumerate(scored):
    journal.append(Node(id=f"n{i}", operator=operator, payload=code, metric=metric, agent_id=agent,
                        created_at=start + offset, plan=f"plan {i}"))
  journal.append(Node(id="n2", operator="draft", payload="boom\n", is_buggy=True, error="import", agent_id="a0",
                      created_at=start + 60.0))
  with ResultStore(files.store) as store:
    for code, metric in (("# seed: a\n", 0.30), ("# seed: b\n", 0.45)):
      store.add_evaluation(code_key(code), task="lra-listops", metric=metric,
                           details={"metrics": {"val_accuracy": metric, "val_accuracy_se": 0.02, "chance": 0.136,
                                                "test_chance": 0.14, "test_accuracy": metric - 0.01}})
    store.add_evaluation(code_key("boom\n"), task="lra-listops", metric=None, is_buggy=True,
                         details={"failed_stage": "import"})
    store.set_meta("design", {"task": "lra-listops", "metric": "val_accuracy", "lower_is_better": False,
                              "final_metric": "test_accuracy", "filename": "model.py"})
  return files


def test_report_of_a_constructed_run_has_baselines_and_the_best_so_far_plot(tmp_path):
  pytest.importorskip("matplotlib")
  files = _constructed_run(tmp_path / "run")
  report = write_report(DesignConfig(), files).read_text().splitlines()
  board = report.index("## Leaderboard")
  assert report[board + 2].startswith("Baselines on the validation labels: majority-class rate 0.1360")
  assert report[board + 4].startswith("| rank |")
  plots_at = report.index("## Plots")
  assert report[plots_at + 2] == "![best so far](best_so_far.png)"
  assert plots_at < report.index("## Best candidate (" + code_key("# seed: b\n") + ", val_accuracy 0.4500)")
  png = (files.root / "best_so_far.png").read_bytes()
  assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_the_plot_is_skipped_in_words_without_matplotlib(tmp_path, monkeypatch):
  files = _constructed_run(tmp_path / "run")
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  report = write_report(DesignConfig(), files).read_text()
  assert "Plots skipped: plots need matplotlib" in report and "Baselines on the validation labels" in report
  assert not (files.root / "best_so_far.png").exists()


def test_plot_series_are_minutes_since_the_first_node_per_agent(tmp_path, monkeypatch):
  files = _constructed_run(tmp_path / "run")
  drawn = {}
  monkeypatch.setattr(plots, "plot_best_so_far", lambda series, path, **kw: drawn.update(series=series, path=path,
                                                                                         **kw))
  assert _plots(files, Journal.load(files.journal), "val_accuracy", False) == ["![best so far](best_so_far.png)"]
  assert drawn["series"] == {"a0": [(0.0, 0.30), (1.0, None)], "a1": [(3.0, 0.45)]}
  assert drawn["path"] == files.root / "best_so_far.png" and drawn["lower_is_better"] is False
  assert drawn["ylabel"] == "val_accuracy"
  assert _plots(files, Journal(), "val_accuracy", False) == []  # no node yet: no plot, no section
