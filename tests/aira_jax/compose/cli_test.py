"""The compose command line when things go wrong (issue 20): Ctrl-C in the first second, inside a long
evaluation, in the race and in the scale stage (real `python -m aira_jax.compose` subprocesses sent SIGINT);
config errors, a missing API key and errors found by building (one line, exit 2, no run directory); an
unknown command; a crashed agent; evaluations lost to an infrastructure fault, and the resumed run that
evaluates them again; a scale stage whose training keeps failing."""

import functools
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from aira_jax.agents import session
from aira_jax.agents.evaluation import EvaluationQueue
from aira_jax.agents.journal import Journal
from aira_jax.compose.cli import main
from aira_jax.compose.evaluator import LayoutEvaluator
from aira_jax.compose.heuristic import HeuristicOperator
from aira_jax.results.store import ResultStore

REPO = pathlib.Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
TINY = [
    "search.depth=4", "search.agents=[greedy]", "search.race_repeats=0", "evaluator.mad_tasks=[in_context_recall]",
    "evaluator.steps=3", "evaluator.batch_size=4", "evaluator.eval_examples=16",
    "evaluator.model={d_model: 16, num_heads: 2, ffn_dim: 32, ssm_head_dim: 8}",
    "scale.target_depth=6", "scale.widths=[8,16,24]", "scale.budgets=[2e7,3e7,4e7]", "scale.seq_len=16",
    "scale.batch_size=4", "scale.min_steps=1", "scale.eval_tokens=256", "scale.bootstrap=50",
    "scale.baselines=[llama]", "scale.methods=[stretch]", "scale.flops=6n",
]


@pytest.fixture
def corpus(tmp_path):
  """A small text corpus file, so the scale stage does not need the optional KJV package."""
  path = tmp_path / "corpus.txt"
  words = "the quick brown fox jumps over the lazy dog and then runs far away into the woods".split()
  path.write_text("\n\n".join(f"paragraph {i}: " + " ".join(words[(i * j) % len(words)] for j in range(40))
                              for i in range(120)))
  return path


class Compose:
  """A `python -m aira_jax.compose` subprocess in its own session; its stderr lines are collected as they come."""

  def __init__(self, args, cwd):
    self.process = subprocess.Popen([sys.executable, "-m", "aira_jax.compose", *args], cwd=cwd, env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
    self.lines: list[str] = []
    self.reader = threading.Thread(target=self._read, daemon=True)
    self.reader.start()

  def _read(self):
    for line in self.process.stderr:
      self.lines.append(line.rstrip("\n"))

  def wait_for(self, prefix: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(line.startswith(prefix) for line in self.lines):
      if self.process.poll() is not None or time.monotonic() > deadline:
        self.process.kill()
        pytest.fail(f"no line {prefix!r} (exit {self.process.poll()}):\n" + "\n".join(self.lines[-30:]))
      time.sleep(0.05)

  def interrupt(self, timeout_s: float = 60) -> tuple[int, float]:
    """Sends SIGINT; (exit status, seconds until the process ended)."""
    sent = time.monotonic()
    os.kill(self.process.pid, signal.SIGINT)
    try:
      status = self.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
      self.process.kill()
      pytest.fail("Ctrl-C did not stop the run:\n" + "\n".join(self.lines[-30:]))
    self.reader.join(timeout=10)
    return status, time.monotonic() - sent


def assert_interrupted(cli: Compose, run: pathlib.Path, command: str, stage: str) -> None:
  """Exit 130, one last line with the run directory and the exact resume command, no traceback, the report
  marked interrupted."""
  text = "\n".join(cli.lines)
  assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
  assert cli.lines[-1] == (f"interrupted; finished work is saved in {run}. Resume with: python -m aira_jax.compose "
                           f"{command} --resume {run}")
  assert sum(line.startswith("interrupted") for line in cli.lines) == 1
  assert f"**The run was interrupted during the {stage} stage**" in (run / "report.md").read_text()


def test_ctrl_c_in_the_first_second_is_one_line_and_leaves_no_run_directory(tmp_path):
  cli = Compose(["search", f"run_dir={tmp_path / 'runs'}", "--quiet"], tmp_path)
  time.sleep(0.5)  # importing jax
  status, _ = cli.interrupt()
  assert status == 130
  assert cli.lines == ["interrupted before the run directory was made; nothing to resume"]
  assert not (tmp_path / "runs").exists()


def test_ctrl_c_inside_a_long_evaluation_stops_within_seconds_and_blames_no_layout(tmp_path):
  run = tmp_path / "runs" / "run"
  cli = Compose(["search", f"run_dir={tmp_path / 'runs'}", "run_id=run", *TINY, "evaluator.steps=100000"], tmp_path)
  cli.wait_for("search: ")
  time.sleep(2)  # compiling, then inside the step loop of an evaluation that would take minutes
  status, seconds = cli.interrupt()
  assert status == 130 and seconds < 30
  print(f"stopped {seconds:.1f} s after Ctrl-C")
  assert_interrupted(cli, run, "search", "search")
  assert len(Journal.load(run / "journal.jsonl")) == 0  # no failed node for the interrupted layout
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.evaluations() == []
  # The printed command resumes it (here with short evaluations): the layout is evaluated, not replayed.
  assert main(["search", "--resume", str(run), "--quiet", "evaluator.steps=3", "search.steps_per_agent=1"]) == 0
  [node] = Journal.load(run / "journal.jsonl").nodes
  assert node.is_good
  assert "The run was interrupted" not in (run / "report.md").read_text()


def test_ctrl_c_during_the_race_writes_the_report_and_blames_no_layout(tmp_path):
  run = tmp_path / "runs" / "run"
  cli = Compose(["search", f"run_dir={tmp_path / 'runs'}", "run_id=run", *TINY, "search.steps_per_agent=3",
                 "search.race_top=2", "search.race_repeats=20", "evaluator.steps=600"], tmp_path)
  cli.wait_for("race: ")
  time.sleep(0.5)
  status, seconds = cli.interrupt()
  assert status == 130 and seconds < 30
  print(f"stopped {seconds:.1f} s after Ctrl-C")
  assert_interrupted(cli, run, "search", "search")
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    rows = store.evaluations()
    assert store.get_meta("race") is None
  assert rows and not any(row.is_buggy for row in rows)  # the interrupted race evaluation is not recorded


def test_ctrl_c_in_the_scale_stage_stops_its_training_and_records_no_run(tmp_path, corpus):
  run = tmp_path / "runs" / "run"
  cli = Compose(["run", f"run_dir={tmp_path / 'runs'}", "run_id=run", *TINY, "search.steps_per_agent=1",
                 f"scale.task_options={{path: {corpus}}}", "scale.budgets=[1e12,2e12]"], tmp_path)
  cli.wait_for("scale: counting")
  time.sleep(2)  # compiling, then inside a training run of some 100,000 steps
  status, seconds = cli.interrupt()
  assert status == 130 and seconds < 30
  print(f"stopped {seconds:.1f} s after Ctrl-C")
  assert_interrupted(cli, run, "run", "scale")
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.training_runs() == []  # the interrupted run is not recorded as diverged


@pytest.mark.parametrize("args, line", [
    (["--config", str(REPO / "experiments" / "compose" / "llm_gemini.yaml")],
     "error: search.agents[gemini-greedy].llm: no Gemini API key: set GOOGLE_API_KEY or GEMINI_API_KEY (or pass "
     "api_key=...)"),
    (["search.steps_per_agent=-1"], "error: search.steps_per_agent must be positive (or null for no limit), got -1"),
    (["scale.baselines=[foo]"], "error: scale.baselines[0]: must be one of llama, composer, composer6, nemotron; "
                                "got 'foo'"),
    (["search.agents=[{name: a, llm: 'bogus:x'}]"], "error: search.agents[a]: unknown LLM backend 'bogus'"),
    (["evaluator.model={attention_impl: mosaic, dtype: bfloat16}"],
     "error: evaluator.model: impl 'mosaic' needs a CUDA GPU; this backend is cpu"),
    (["evaluator.model.scan_impl=pallas"], "error: evaluator.model: impl='pallas' compiles for GPU or TPU; this backend "
                                           "is 'cpu'"),
])
def test_config_errors_are_one_line_before_any_work(tmp_path, args, line):
  env = {k: v for k, v in ENV.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
  process = subprocess.run([sys.executable, "-m", "aira_jax.compose", *args, f"run_dir={tmp_path / 'runs'}"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert process.returncode == 2
  assert process.stderr.startswith(line) and process.stderr.count("\n") == 1, process.stderr
  assert not (tmp_path / "runs").exists()


def test_an_unreachable_llm_endpoint_stops_the_run_before_any_work(tmp_path):
  import socket
  with socket.socket() as probe:  # a port nothing listens on
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  agents = f"search.agents=[{{name: local, llm: 'openai:qwen3@http://127.0.0.1:{port}/v1'}}]"
  process = subprocess.run([sys.executable, "-m", "aira_jax.compose", "search", agents, f"run_dir={tmp_path / 'runs'}"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
  assert process.returncode == 2
  assert process.stderr.startswith(f"error: search.agents[local].llm: openai:qwen3@http://127.0.0.1:{port}/v1 is not "
                                   f"usable: cannot reach http://127.0.0.1:{port}/v1"), process.stderr
  assert process.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_an_unreachable_ray_cluster_stops_the_run_before_any_work(tmp_path):
  pytest.importorskip("ray")
  import socket
  with socket.socket() as probe:  # a port nothing listens on
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  started = time.monotonic()
  process = subprocess.run([sys.executable, "-m", "aira_jax.compose", "search", "executor.backend=ray",
                            f"executor.address=127.0.0.1:{port}", f"run_dir={tmp_path / 'runs'}"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
  assert process.returncode == 2 and time.monotonic() - started < 60
  assert process.stderr == (f"error: executor.address=127.0.0.1:{port}: no Ray cluster answers there (Connection "
                            "refused); start one with `ray start --head --port=PORT` on the head node, or use "
                            "executor.address=local\n"), process.stderr
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragment", [
    (["search", "evaluator.model={d_model: 16, num_heads: 3}"], "error: evaluator.model: invalid ModelConfig: "),
    (["search", "evaluator.preset=huge"], "error: evaluator.preset: must be one of tiny, proxy, 350m, 1b, 3b; "
                                          "got 'huge'"),
    (["run", "scale.task_options={path: /no/such/corpus}"], "error: scale.task 'text/bytes': corpus path "),
    (["run", "scale.widths=[24,40,56]", "scale.head_dim=16"], "error: scale.widths: 56 does not split into 3 heads"),
])
def test_errors_found_by_building_fail_before_the_run_directory_exists(tmp_path, capsys, corpus, args, fragment):
  overrides = [f"scale.task_options={{path: {corpus}}}"] if args[0] == "run" else []
  assert main([args[0], f"run_dir={tmp_path / 'runs'}", *overrides, *args[1:]]) == 2
  [line] = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(fragment)
  assert not (tmp_path / "runs").exists()


def test_an_unknown_command_lists_the_commands(tmp_path, capsys):
  assert main(["serch", f"run_dir={tmp_path / 'runs'}"]) == 2
  assert capsys.readouterr().err == ("error: unexpected argument 'serch': overrides look like key=value; commands: "
                                     "run, search, scale, report (see --help)\n")


def test_a_crashed_agent_exits_1_naming_the_agent_and_why(tmp_path, monkeypatch, capsys, corpus):
  def broken(self, action, journal, rng):
    raise RuntimeError("operator bug")

  monkeypatch.setattr(HeuristicOperator, "propose", broken)
  run = tmp_path / "runs" / "run"
  code = main(["run", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *TINY, "search.steps_per_agent=2",
               f"scale.task_options={{path: {corpus}}}"])
  assert code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[1:] == ["error: agent greedy crashed 4 time(s) and stopped: RuntimeError: operator bug",
                     f"finished work is saved in {run}; after fixing the cause, resume with: python -m "
                     f"aira_jax.compose run --resume {run}"]
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.training_runs() == []  # the scale stage waits for a clean search
  assert "**Agent greedy crashed** (4 time(s); last: `RuntimeError: operator bug`)" in (run / "report.md").read_text()


def test_infrastructure_faults_are_not_blamed_and_a_resumed_run_evaluates_again(tmp_path, monkeypatch, capsys):
  def lost_device(*args):
    raise RuntimeError("device lost")

  monkeypatch.setattr(session, "EvaluationQueue", functools.partial(EvaluationQueue, retry_pause_s=0))
  with monkeypatch.context() as patch:
    patch.setattr(LayoutEvaluator, "_train_one", lost_device)
    code = main(["search", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *TINY,
                 "search.steps_per_agent=2"])
  run = tmp_path / "runs" / "run"
  assert code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[1].startswith("error: 4 evaluation(s) failed for infrastructure reasons (not the candidates' fault, "
                           "not recorded as their results): the evaluator failed on ")
  assert err[1].endswith(": RuntimeError: device lost (failed 3 times)")
  assert len(Journal.load(run / "journal.jsonl")) == 0
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.evaluations() == []
    assert store.get_meta("search")["stop_reasons"] == {"greedy": "4 infrastructure failures"}
  assert "**4 evaluation(s) failed for infrastructure reasons**" in (run / "report.md").read_text()

  assert main(["search", "--resume", str(run), "--quiet"]) == 0  # the device is back
  nodes = Journal.load(run / "journal.jsonl").nodes
  assert len(nodes) == 2 and all(node.is_good for node in nodes)
  assert "infrastructure" not in (run / "report.md").read_text()


def test_a_training_run_that_keeps_failing_stops_the_scale_stage_with_one_line(tmp_path, monkeypatch, capsys, corpus):
  from aira_jax.compose import scale
  calls = []

  def lost_device(self, *args):
    calls.append(args)
    raise RuntimeError("device lost")

  monkeypatch.setattr(scale._PointTrainer, "train", lost_device)
  run = tmp_path / "runs" / "run"
  code = main(["run", f"run_dir={tmp_path / 'runs'}", "run_id=run", "--quiet", *TINY, "search.steps_per_agent=1",
               f"scale.task_options={{path: {corpus}}}"])
  assert code == 1 and len(calls) == 3
  err = capsys.readouterr().err.strip().splitlines()
  assert err[1:] == ["error: scale stopped: RuntimeError: device lost (failed 3 times)",
                     f"finished work is saved in {run}; after fixing the cause, resume with: python -m "
                     f"aira_jax.compose run --resume {run}"]
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.training_runs() == [] and len(store.evaluations()) == 1  # the search's work is kept
  assert (run / "report.md").is_file()
