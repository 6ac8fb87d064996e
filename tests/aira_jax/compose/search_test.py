"""Stage 1 of compose end to end with the built-in agents and a scripted score in place of training: analyses
are written on schedule with the statistics of the agent's own steps, never scored or evaluated, mirrored into
the store, summarised in the report, and a resumed search keeps their schedule and repeats no evaluation."""

from aira_jax.agents.journal import Journal
from aira_jax.compose.analysis import analyze_layouts
from aira_jax.compose.cli import main
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.results.store import ResultStore

SEARCH = [
    "search.depth=8", "search.agents=[greedy, mcts]", "search.race_repeats=0", "search.analyze_every=3",
    "evaluator.task=mad-lite", "evaluator.mad_tasks=[in_context_recall]", "evaluator.steps=1",
    "evaluator.batch_size=4", "evaluator.eval_examples=16",
    "evaluator.model={d_model: 16, num_heads: 2, ffn_dim: 32, ssm_head_dim: 8}",
]


def scripted_score(self, task_name, layout, seed):
  """(score, error, compile seconds) without training: attention share, plus a bonus for attention on top."""
  return layout.ratios()["A"] + 0.1 * (layout.symbols[-1] == "A"), None, 0.0


def _shape(nodes):
  return "".join("A" if n.is_analysis else "s" for n in nodes)


def test_a_search_writes_analyses_on_schedule_and_resumes_them(tmp_path, monkeypatch):
  monkeypatch.setattr(LayoutEvaluator, "_train_one", scripted_score)
  run = tmp_path / "runs" / "run"
  assert main(["search", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *SEARCH,
               "search.steps_per_agent=7"]) == 0
  journal = Journal.load(run / "journal.jsonl")
  for agent in ("greedy", "mcts"):
    assert _shape(journal.by_agent(agent)) == "sssAsssAs"
  for analysis in journal.analyses():
    assert analysis.metric is None and not analysis.is_buggy and "evaluate" not in analysis.timings
    mine = journal.by_agent(analysis.agent_id)
    view = Journal()
    for node in mine[:mine.index(analysis)]:
      view.append(node)
    expected = analyze_layouts(view, "AM")  # the statistics of the agent's own steps up to then
    assert (analysis.payload, analysis.plan) == (expected.text, expected.directions)
    assert analysis.parent_ids == (view.nodes[-1].id,)
  first = journal.analyses()[0]
  assert first.payload.startswith("3 steps: 3 scored") and "By attention share:" in first.payload

  with ResultStore(run / "results.sqlite", read_only=True) as store:
    stored = {node.id: node for node in store.nodes()}
    evaluations = store.evaluations()
    assert store.get_meta("search")["stop_reasons"] == {"greedy": "step budget", "mcts": "step budget"}
  assert set(stored) == {node.id for node in journal.nodes}
  assert all(stored[n.id].operator == "analyze" and stored[n.id].metric is None for n in journal.analyses())
  steps = [n for n in journal.nodes if not n.is_analysis]
  assert len(evaluations) == len({n.payload for n in steps})  # every distinct layout once; no analysis
  report = (run / "report.md").read_text()
  assert f"- nodes: {len(journal)} (" in report and "4 analyses (0 failed)" in report
  assert "Latest analysis of each agent" in report and "- **greedy**, after 6 steps: 6 steps: 6 scored" in report

  assert main(["search", "--resume", str(run), "--quiet", "search.steps_per_agent=10"]) == 0
  journal = Journal.load(run / "journal.jsonl")
  for agent in ("greedy", "mcts"):
    assert _shape(journal.by_agent(agent)) == "sssAsssAsssAs"  # as if it had never stopped
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    keys = [row.key for row in store.evaluations()]
  assert len(keys) == len(set(keys))  # nothing evaluated twice
  for agent in ("greedy", "mcts"):
    later = [n for n in journal.by_agent(agent) if n.is_analysis][1:]
    assert len(later) == 2 and all("Since the previous analysis: 3 steps, 3 scored" in n.payload for n in later)
