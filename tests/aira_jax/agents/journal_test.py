"""Tests for `aira_jax.agents.journal`: node validation and JSON, queries, JSONL persistence and resume."""

import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.node import MAX_EXCERPT_CHARS, trim_excerpt


def _node(node_id, operator="draft", parents=(), metric=None, buggy=False, **fields):
  return Node(id=node_id, operator=operator, parent_ids=parents, metric=metric, is_buggy=buggy, **fields)


def _sample_journal(path=None):
  journal = Journal(path)
  journal.append(_node("d1", metric=0.5, payload="2A+2M", agent_id="a"))
  journal.append(_node("d2", buggy=True, error="OOM", agent_id="b"))
  journal.append(_node("i1", "improve", ("d1",), metric=0.7, agent_id="a"))
  journal.append(_node("g1", "debug", ("d2",), buggy=True, error="shape"))
  journal.append(_node("g2", "debug", ("g1",), buggy=True, error="shape again"))
  journal.append(_node("x1", "crossover", ("d1", "i1"), metric=0.6))
  return journal


def test_node_validates_operator_parents_and_metric():
  with pytest.raises(ValueError, match="unknown operator"):
    _node("a", "mutate")
  with pytest.raises(ValueError, match="takes 2 parent"):
    _node("a", "crossover", ("b",))
  with pytest.raises(ValueError, match="finite"):
    _node("a", metric=float("nan"))
  with pytest.raises(ValueError, match="an analysis is never evaluated, so it has no metric"):
    _node("a", "analyze", ("b",), metric=0.5)


def test_node_json_round_trip_and_unknown_field():
  node = _node("n", "improve", ("p",), metric=1.25, plan="swap", payload="AMAM", timings={"train": 2},
               tokens=17, agent_id="ag", lower_is_better=True, output_excerpt="ok\n")
  line = node.to_json()
  assert "\n" not in line
  assert Node.from_json(line) == node
  record = json.loads(line)
  record["colour"] = "red"
  with pytest.raises(ValueError, match="colour"):
    Node.from_dict(record)


def test_output_excerpt_is_trimmed_keeping_the_tail():
  text = "start " + "x" * 10_000 + " Traceback: boom"
  node = _node("n", output_excerpt=text)
  assert len(node.output_excerpt) <= MAX_EXCERPT_CHARS
  assert node.output_excerpt.endswith("boom") and "trimmed" in node.output_excerpt
  assert trim_excerpt("short") == "short"


def test_queries():
  journal = _sample_journal()
  assert len(journal) == 6
  assert [n.id for n in journal.drafts()] == ["d1", "d2"]
  assert [n.id for n in journal.children("d1")] == ["i1", "x1"]
  assert [n.id for n in journal.children("i1")] == ["x1"]
  assert [n.id for n in journal.good_nodes()] == ["d1", "i1", "x1"]
  assert [n.id for n in journal.buggy_nodes()] == ["d2", "g1", "g2"]
  assert [n.id for n in journal.buggy_leaves()] == ["g2"]
  assert [n.id for n in journal.best(2)] == ["i1", "x1"]
  assert [n.id for n in journal.by_agent("a")] == ["d1", "i1"]
  assert journal.get("g1").error == "shape"
  with pytest.raises(KeyError, match="nope"):
    journal.get("nope")


def test_analyses_are_listed_apart_and_left_out_of_the_candidates_view(tmp_path):
  journal = _sample_journal(tmp_path / "journal.jsonl")
  assert journal.candidates_only() is journal  # nothing to leave out: the journal itself
  journal.append(_node("an1", "analyze", ("d2",), payload="2 steps: 1 scored", plan="try more A", agent_id="b"))
  journal.append(_node("an2", "analyze", ("g2",), buggy=True, error="ReplyParseError: no JSON"))
  journal.append(_node("d3", metric=0.9, agent_id="b"))
  assert [n.id for n in journal.analyses()] == ["an1", "an2"]
  assert journal.get("an1").is_analysis and not journal.get("an1").is_good and not journal.get("d3").is_analysis
  view = journal.candidates_only()
  assert view is not journal and view.path is None
  assert [n.id for n in view.nodes] == ["d1", "d2", "i1", "g1", "g2", "x1", "d3"]
  assert [n.id for n in view.buggy_leaves()] == ["g2"]  # its analysis child hides g2 in the journal itself
  assert [n.id for n in journal.buggy_leaves()] == ["an2"]
  assert [n.id for n in Journal.load(tmp_path / "journal.jsonl").analyses()] == ["an1", "an2"]  # resumes


def test_best_respects_lower_is_better():
  journal = Journal()
  for i, metric in enumerate([3.0, 1.0, 2.0]):
    journal.append(_node(f"d{i}", metric=metric, lower_is_better=True))
  assert [n.id for n in journal.best(3)] == ["d1", "d2", "d0"]


def test_debug_depth_counts_consecutive_debugs_including_the_node():
  journal = _sample_journal()
  assert journal.debug_depth("d2") == 0
  assert journal.debug_depth("g1") == 1
  assert journal.debug_depth("g2") == 2
  journal.append(_node("i2", "improve", ("g2",), metric=0.1))
  journal.append(_node("g3", "debug", ("i2",), buggy=True))
  assert journal.debug_depth("i2") == 0  # an improve breaks the chain
  assert journal.debug_depth("g3") == 1


def test_append_refuses_duplicates_and_unknown_parents():
  journal = _sample_journal()
  with pytest.raises(ValueError, match="duplicate"):
    journal.append(_node("d1"))
  with pytest.raises(ValueError, match="unknown parent"):
    journal.append(_node("z", "improve", ("ghost",)))
  assert len(journal) == 6


def test_jsonl_round_trip(tmp_path):
  path = tmp_path / "journal.jsonl"
  journal = _sample_journal(path)
  assert len(path.read_text().splitlines()) == 6
  loaded = Journal.load(path)
  assert loaded.nodes == journal.nodes
  with pytest.raises(ValueError, match="Journal.load"):
    Journal(path)


def test_resume_after_truncated_last_line(tmp_path):
  path = tmp_path / "journal.jsonl"
  _sample_journal(path)
  good_size = path.stat().st_size
  with open(path, "a") as f:
    f.write(_node("half", metric=1.0).to_json()[:25])  # a crash mid-write
  with pytest.warns(UserWarning, match="truncated last line 7"):
    resumed = Journal.load(path)
  assert len(resumed) == 6 and path.stat().st_size == good_size
  resumed.append(_node("after", "improve", ("x1",), metric=0.9))
  again = Journal.load(path)
  assert [n.id for n in again.nodes][-1] == "after" and len(again) == 7


def test_resume_when_only_the_final_newline_was_lost(tmp_path):
  path = tmp_path / "journal.jsonl"
  _sample_journal(path)
  path.write_bytes(path.read_bytes()[:-1])
  resumed = Journal.load(path)
  assert len(resumed) == 6
  resumed.append(_node("after"))
  assert len(Journal.load(path)) == 7


def test_corruption_in_the_middle_names_the_line(tmp_path):
  path = tmp_path / "journal.jsonl"
  _sample_journal(path)
  lines = path.read_text().splitlines()
  lines[2] = lines[2][:10]
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match="line 3 of 6"):
    Journal.load(path)


def test_invalid_node_on_the_last_line_is_corruption_not_truncation(tmp_path):
  path = tmp_path / "journal.jsonl"
  _sample_journal(path)
  with open(path, "a") as f:
    f.write(_node("d1").to_json() + "\n")  # well-formed JSON, duplicate id
  with pytest.raises(ValueError, match="line 7 of 7"):
    Journal.load(path)


def test_load_missing_file_gives_empty_journal_bound_to_it(tmp_path):
  path = tmp_path / "new.jsonl"
  journal = Journal.load(path)
  assert len(journal) == 0
  journal.append(_node("d"))
  assert len(Journal.load(path)) == 1


def test_concurrent_appends_from_threads_are_all_recorded(tmp_path):
  path = tmp_path / "journal.jsonl"
  journal = Journal(path)
  threads_count, per_thread = 8, 25

  def work(t):
    for i in range(per_thread):
      journal.append(_node(f"t{t}-{i}", metric=float(i), agent_id=f"agent{t}"))

  threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_count)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  expected = {f"t{t}-{i}" for t in range(threads_count) for i in range(per_thread)}
  assert {n.id for n in journal.nodes} == expected
  assert {n.id for n in Journal.load(path).nodes} == expected
  assert len(journal.by_agent("agent3")) == per_thread


_texts = st.text(max_size=40)


@settings(max_examples=40, deadline=None)
@given(plan=_texts, payload=_texts, metric=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
       buggy=st.booleans(), tokens=st.integers(0, 10**9), lower=st.booleans())
def test_property_json_round_trip(plan, payload, metric, buggy, tokens, lower):
  node = _node("n", plan=plan, payload=payload, metric=metric, buggy=buggy, tokens=tokens, lower_is_better=lower,
               error=None if not buggy else plan)
  assert Node.from_json(node.to_json()) == node


def test_a_journal_in_a_new_directory_creates_it(tmp_path):
  for journal in (Journal(tmp_path / "a" / "journal.jsonl"), Journal.load(tmp_path / "b" / "c" / "journal.jsonl")):
    journal.append(Node(id="n1", operator="draft", payload="AM"))
    assert Journal.load(journal.path).get("n1").payload == "AM"
