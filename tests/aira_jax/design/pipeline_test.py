"""End-to-end design runs through the CLI and the sandbox: an LLM agent fed scripted replies whose broken code
a debug step fixes, on the autoresearch task (trivial train.py files keep it fast), and the report."""

import json

import numpy as np
import pytest

from aira_jax.agents.journal import Journal
from aira_jax.design.cli import main
from aira_jax.design.evaluator import code_key
from aira_jax.results.store import ResultStore

BROKEN = "import numpy as np\n\ndef train(data, budget_seconds)\n  return None\n"
UNIFORM = ("import numpy as np\n\n\ndef train(data, budget_seconds):\n  data.start_clock()\n"
           "  return np.zeros(data.vocab_size, np.float32)\n\n\n"
           "def predict(state, tokens):\n  return np.broadcast_to(state, (*tokens.shape, len(state))).copy()\n")
UNIGRAM_EDIT = ("Use unigram frequencies instead of uniform logits.\n"
                "<<<<<<< SEARCH\n  return np.zeros(data.vocab_size, np.float32)\n"
                "=======\n  counts = np.bincount(data.train_targets[data.train_targets >= 0], "
                "minlength=data.vocab_size) + 1.0\n  return np.log(counts / counts.sum()).astype(np.float32)\n"
                ">>>>>>> REPLACE\n")


@pytest.fixture
def corpus(tmp_path):
  rng = np.random.default_rng(0)
  words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
  path = tmp_path / "corpus.txt"
  path.write_text("\n\n".join(" ".join(rng.choice(words, 30)) + f" {i}." for i in range(300)))
  return path


def test_scripted_llm_run_with_a_debug_fix(tmp_path, corpus):
  replies = [f"Plan: a first try\n```python\n{BROKEN}```", f"Plan: add the missing colon\n```python\n{UNIFORM}```",
             UNIGRAM_EDIT]
  script = tmp_path / "replies.jsonl"
  script.write_text("".join(json.dumps({"text": r}) + "\n" for r in replies))
  agent = (f"search.agents=[{{name: llm, policy: greedy, llm: 'scripted:{script}', edits: diff, "
           "policy_options: {num_drafts: 1, debug_prob: 1.0}}]")
  code = main(["--quiet", f"run_dir={tmp_path / 'runs'}", "run_id=d", "search.task=autoresearch", agent,
               "search.steps_per_agent=3", f"search.task_options={{path: {corpus}, seq_len: 32, budget_seconds: 1, "
               "max_documents: 200, eval_tokens: 1024}"])
  assert code == 0
  run = tmp_path / "runs" / "d"
  draft, fix, improve = Journal.load(run / "journal.jsonl").nodes
  assert draft.is_buggy and draft.error.startswith("stage import failed") and "SyntaxError" in draft.error
  assert (fix.operator, fix.parent_ids, fix.is_good) == ("debug", (draft.id,), True)
  assert improve.operator == "improve" and improve.parent_ids == (fix.id,)
  assert improve.metric < fix.metric  # unigram beats uniform in bits per byte
  assert fix.metric == pytest.approx(np.log2(257), rel=1e-4)  # uniform logits: log2(V) bits per byte
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    rows = store.evaluations()
  assert len(rows) == 3 and rows[0].details["failed_stage"] == "import"
  for row in rows:
    assert (run / "candidates" / row.key / "train.py").is_file()
    assert (run / "candidates" / row.key / "records.jsonl").is_file()
  report = (run / "report.md").read_text()
  assert "## Leaderboard" in report and "failures by stage: import x1" in report and "np.bincount" in report


def test_design_cli_errors(tmp_path, capsys):
  assert main([f"run_dir={tmp_path}", "search.task=nonsense"]) == 2
  assert "search.task" in capsys.readouterr().err
  assert main([f"run_dir={tmp_path}", "search.agents=[{name: a, policy: greedy, edits: sideways}]"]) == 2
  assert "edits" in capsys.readouterr().err
  assert main(["report"]) == 2


def test_offline_built_in_agent_on_tiny_listops_and_resume(tmp_path):
  options = ("{num_train: 200, num_validation: 64, num_test: 64, seq_len: 32, max_depth: 3, steps: 10, "
             "batch_size: 16, d_model: 16, num_heads: 2, num_layers: 1}")
  code = main(["--quiet", f"run_dir={tmp_path / 'runs'}", "run_id=l", "search.agents=[greedy]",
               "search.steps_per_agent=2", f"search.task_options={options}"])
  assert code == 0
  run = tmp_path / "runs" / "l"
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    first = [row.key for row in store.evaluations()]
  assert main(["--quiet", "--resume", str(run), "search.steps_per_agent=3"]) == 0  # one more step
  nodes = Journal.load(run / "journal.jsonl").nodes
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    keys = [row.key for row in store.evaluations()]
  assert keys[:len(first)] == first and len(keys) == len(set(keys)) <= 3  # nothing lost, nothing repeated
  assert len(nodes) == 3 and all(node.operator == "draft" for node in nodes)
  assert all(node.payload.startswith("# seed: ") for node in nodes)
  scored = [node for node in nodes if node.is_good]
  assert scored and all(0.0 <= node.metric <= 1.0 for node in scored)
  for node in scored:  # the harness reports up to predict; the trusted parent's "score" stage sets the metrics
    result = json.loads((run / "candidates" / code_key(node.payload) / "result.json").read_text())
    assert list(result["stages"])[-3:] == ["train", "predict", "score"]
    assert [name for name, stage in result["stages"].items() if stage.get("trusted")] == ["score"]
    assert set(result["metrics"]) == {"val_accuracy", "val_accuracy_se", "test_accuracy", "chance", "test_chance"}
    assert result["metrics"]["val_accuracy"] == node.metric
    assert result["reported"]["steps"] == 10 and "val_accuracy" not in result["reported"]
  report = (run / "report.md").read_text()
  assert "test_accuracy" in report and "## Best candidate" in report
