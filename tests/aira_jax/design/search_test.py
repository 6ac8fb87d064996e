"""A design search end to end with the built-in agents and a scripted result in place of the sandbox: analyses
are written on schedule with the statistics of the agent's own steps, never evaluated, mirrored into the store,
counted apart in the report, and a resumed search keeps their schedule and repeats no evaluation."""

from aira_jax.agents.journal import Journal
from aira_jax.design.analysis import analyze_candidates
from aira_jax.design.cli import main
from aira_jax.design.evaluator import CandidateEvaluator, CandidateResult, code_key
from aira_jax.design.knobs import seed_name
from aira_jax.design.mechanisms import seed_sources
from aira_jax.results.store import ResultStore

SEEDS = [seed_name(source) for source in seed_sources().values()]


def scripted_score(self, code):
  """What `CandidateEvaluator.score` returns, without the sandbox: linear files fail in train, the others score a
  number drawn from their text."""
  key = code_key(code)
  if seed_name(code) == "linear":
    result = CandidateResult(key=key, stages={"train": {"ok": False}}, metrics={}, failed_stage="train",
                             error="stage train failed: scripted", seconds=0.0, killed=None, returncode=1)
  else:
    score = int(key, 16) % 997 / 997
    result = CandidateResult(key=key, stages={"score": {"ok": True}}, metrics={"val_accuracy": score},
                             failed_stage=None, error=None, seconds=0.0, killed=None, returncode=0)
  return result, self._kept_files(code, [], result, [])


def _shape(nodes):
  return "".join("A" if n.is_analysis else "s" for n in nodes)


def test_a_design_search_writes_analyses_on_schedule_and_resumes_them(tmp_path, monkeypatch):
  monkeypatch.setattr(CandidateEvaluator, "score", scripted_score)
  run = tmp_path / "runs" / "run"
  args = ["--quiet", "sandbox.isolation=process", "search.agents=[greedy, evolutionary]", "search.analyze_every=3"]
  assert main([f"run_dir={tmp_path / 'runs'}", "run_id=run", *args, "search.steps_per_agent=7"]) == 0
  journal = Journal.load(run / "journal.jsonl")
  for agent in ("greedy", "evolutionary"):
    assert _shape(journal.by_agent(agent)) == "sssAsssAs"
  for analysis in journal.analyses():
    assert analysis.metric is None and not analysis.is_buggy and "evaluate" not in analysis.timings
    mine = journal.by_agent(analysis.agent_id)
    view = Journal()
    for node in mine[:mine.index(analysis)]:
      view.append(node)
    expected = analyze_candidates(view, seeds=SEEDS, lower_is_better=False)  # the agent's own steps up to then
    assert (analysis.payload, analysis.plan) == (expected.text, expected.directions)
    assert analysis.parent_ids == (view.nodes[-1].id,)
  assert journal.analyses()[0].payload.startswith("3 steps: ")

  with ResultStore(run / "results.sqlite", read_only=True) as store:
    stored = {node.id: node for node in store.nodes()}
    evaluations = store.evaluations()
  assert set(stored) == {node.id for node in journal.nodes}
  assert all(stored[n.id].operator == "analyze" and stored[n.id].metric is None for n in journal.analyses())
  steps = [n for n in journal.nodes if not n.is_analysis]
  assert len(evaluations) == len({n.payload for n in steps})  # every distinct file once; no analysis
  report = (run / "report.md").read_text()
  assert (f"- nodes: {len(journal)} ({sum(n.is_good for n in steps)} scored, {sum(n.is_buggy for n in steps)} "
          "failed, 4 analyses (0 failed))") in report
  assert "| greedy | 7 |" in report and "| evolutionary | 7 |" in report  # steps per agent, analyses aside
  assert "Latest analysis of each agent" in report and "- **greedy**, after 6 steps: 6 steps: " in report

  assert main(["--resume", str(run), *args, "search.steps_per_agent=10"]) == 0
  journal = Journal.load(run / "journal.jsonl")
  for agent in ("greedy", "evolutionary"):
    assert _shape(journal.by_agent(agent)) == "sssAsssAsssAs"  # as if it had never stopped
    later = [n for n in journal.by_agent(agent) if n.is_analysis][1:]
    assert all("Since the previous analysis: 3 steps" in n.payload for n in later)
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    keys = [row.key for row in store.evaluations()]
  assert len(keys) == len(set(keys))  # nothing evaluated twice
