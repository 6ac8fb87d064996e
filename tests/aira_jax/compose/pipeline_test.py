"""End-to-end compose runs at toy size: heuristic agents through search, scale and report; an LLM agent fed
scripted replies (malformed JSON, invalid layouts); a search killed with SIGKILL and resumed (evaluating here,
and on a private Ray instance)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from ray_testing import RAY

from aira_jax.agents.journal import Journal
from aira_jax.compose.cli import main
from aira_jax.results.store import ResultStore

REPO = pathlib.Path(__file__).resolve().parents[3]

TINY = [
    "search.depth=4", "search.steps_per_agent=3", "search.race_repeats=3", "search.race_top=2",
    "evaluator.task=mad-lite",
    "evaluator.mad_tasks=[in_context_recall]", "evaluator.steps=3", "evaluator.batch_size=4",
    "evaluator.eval_examples=16", "evaluator.model={d_model: 16, num_heads: 2, ffn_dim: 32, ssm_head_dim: 8}",
    "scale.target_depth=6", "scale.widths=[8,16,24]", "scale.budgets=[2e7,3e7,4e7]", "scale.seq_len=16",
    "scale.batch_size=4", "scale.min_steps=1", "scale.eval_tokens=256", "scale.bootstrap=50",
    "scale.baselines=[llama]",
]


@pytest.fixture
def corpus(tmp_path):
  """A small text corpus file, so the scale stage does not need the optional KJV package."""
  path = tmp_path / "corpus.txt"
  words = "the quick brown fox jumps over the lazy dog and then runs far away into the woods".split()
  paragraphs = [f"paragraph {i}: " + " ".join(words[(i * j) % len(words)] for j in range(40)) for i in range(120)]
  path.write_text("\n\n".join(paragraphs))
  return path


def _run_dir(tmp_path, run_id="run"):
  return tmp_path / "runs" / run_id


def test_heuristic_run_end_to_end(tmp_path, corpus, capsys):
  code = main(["run", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *TINY,
               f"scale.task_options={{path: {corpus}}}"])
  assert code == 0
  run = _run_dir(tmp_path)
  journal = Journal.load(run / "journal.jsonl")
  assert len(journal) == 3 * 3  # three default agents, three steps each
  assert all(node.payload and len(node.payload) == 4 for node in journal.nodes)
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    families = {row.family for row in store.training_runs()}
    assert families == {"found-stretch", "llama"}
    assert len(store.nodes()) == len(journal)
    repeated = store.evaluations_by_key(min_count=2)
    raced = store.get_meta("race")
    assert {row["layout"] for row in raced} == set(repeated)  # the race: the two best layouts, repeated
    assert len(raced) == 2 and all(2 <= len(v) <= 3 for v in repeated.values())
    step_tokens = 4 * 16  # scale.batch_size x scale.seq_len: the budget is spent to within half a step
    assert all(abs(run.details["realised_flops"] - run.budget_flops) <= step_tokens / 2 * run.details["flops_per_token"]
               for run in store.training_runs())
  report = (run / "report.md").read_text()
  for heading in ("## Verdict", "## Leaderboard", "## Search", "## Noise floor", "## Aggregation",
                  "## Scaling study", "Frontiers", "### Comparisons", "found-stretch vs llama: **", "FLOPs counted:",
                  "90% CI", "repeats"):
    assert heading in report
  assert report.index("## Verdict") < report.index("## Leaderboard")
  assert str(run / "report.md") in capsys.readouterr().out


def _scripted_replies(path: pathlib.Path) -> None:
  replies = [
      "this is not JSON at all",                                   # repaired ...
      json.dumps({"plan": "alternate", "layout": "AMAM"}),         # ... by this one
      json.dumps({"plan": "too short", "layout": "AMA"}),          # wrong number of layers
      json.dumps({"plan": "mamba", "layout": "AMSM"}),             # S is outside the space AM
      json.dumps({"plan": "attention first", "layout": "2A+2M"}),
      "{broken", "{still broken",                                  # repair fails: a failed step
      json.dumps({"plan": "mlp heavy", "layout": "A+3M"}),
  ]
  path.write_text("\n".join(json.dumps({"text": r}) for r in replies) + "\n")


def test_scripted_llm_agent_with_bad_replies(tmp_path, corpus):
  replies = tmp_path / "replies.jsonl"
  _scripted_replies(replies)
  agents = f"search.agents=[{{name: llm, policy: greedy, llm: 'scripted:{replies}'}}]"
  code = main(["search", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *TINY, agents,
               "search.steps_per_agent=6", "search.race_repeats=0"])
  assert code == 0
  run = _run_dir(tmp_path)
  nodes = Journal.load(run / "journal.jsonl").nodes
  assert len(nodes) == 6
  errors = [node.error or "" for node in nodes if node.is_buggy]
  assert any("has 3 layers; exactly 4 are required" in e for e in errors)
  assert any("outside the search space" in e for e in errors)
  assert any("LLMResponseError" in e or "not valid JSON" in e for e in errors)
  rejected = [node for node in nodes if "has 3 layers" in (node.error or "")]
  assert rejected[0].payload == "AMA" and rejected[0].tokens > 0  # the rejected layout is kept for debugging
  assert sum(node.is_good for node in nodes) >= 3
  assert (run / "llm_calls.jsonl").is_file()
  assert "## Leaderboard" in (run / "report.md").read_text()


@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=[RAY, pytest.mark.slow])])  # ray: ~30 s
def test_killed_search_resumes_without_losing_or_repeating_evaluations(tmp_path, backend):
  if backend == "ray":
    pytest.importorskip("ray")
  overrides = [f"run_dir={tmp_path / 'runs'}", "run_id=run", *TINY, "search.steps_per_agent=40",
               "search.race_repeats=0", "search.agents=[greedy]", "evaluator.steps=20", f"executor.backend={backend}"]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
  process = subprocess.Popen([sys.executable, "-m", "aira_jax.compose", "search", "--quiet", *overrides],
                             env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  run = _run_dir(tmp_path)
  journal_path = run / "journal.jsonl"
  deadline = time.monotonic() + 120
  while time.monotonic() < deadline:
    if journal_path.exists() and journal_path.read_text().count("\n") >= 4:
      break
    if process.poll() is not None:
      pytest.fail(f"the search ended before it could be killed: {process.stderr.read().decode()[-2000:]}")
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    before = [(row.key, row.seed, row.metric) for row in store.evaluations()]
  assert before, "nothing was evaluated before the kill"
  assert main(["search", "--resume", str(run), "--quiet", "search.steps_per_agent=8"]) == 0  # same backend
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    after = [(row.key, row.seed, row.metric) for row in store.evaluations()]
  assert after[:len(before)] == before  # nothing finished was lost
  keys = [key for key, _, _ in after]
  assert len(keys) == len(set(keys))  # and nothing was evaluated twice
  assert len(Journal.load(run / "journal.jsonl")) == 8


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
  assert main(["search", "search.depth=abc", f"run_dir={tmp_path}"]) == 2
  assert "search.depth" in capsys.readouterr().err
  assert main(["scale"]) == 2
  assert "--resume" in capsys.readouterr().err
  assert main(["report", str(tmp_path / "missing")]) == 2
  assert "not a run directory" in capsys.readouterr().err
  assert main(["search", "nonsense", f"run_dir={tmp_path}"]) == 2
  with pytest.raises(SystemExit) as exit_info:
    main(["--help"])
  assert exit_info.value.code == 0
  assert "isoFLOP" in capsys.readouterr().out
