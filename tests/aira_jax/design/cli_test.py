"""The design command line when things go wrong (issue 20): Ctrl-C while a candidate trains in the sandbox (a
real `python -m aira_jax.design` subprocess sent SIGINT), and an evaluator fault that must not be blamed on
the candidate."""

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
from aira_jax.design import evaluator
from aira_jax.design.cli import main
from aira_jax.results.store import ResultStore

REPO = pathlib.Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def listops(steps: int) -> list[str]:
  options = (f"{{num_train: 200, num_validation: 64, num_test: 64, seq_len: 32, max_depth: 3, steps: {steps}, "
             "batch_size: 16, d_model: 16, num_heads: 2, num_layers: 1}")
  return ["search.agents=[greedy]", "search.steps_per_agent=2", f"search.task_options={options}"]


def test_ctrl_c_while_a_candidate_trains_stops_it_and_blames_nothing(tmp_path):
  run = tmp_path / "runs" / "d"
  process = subprocess.Popen([sys.executable, "-m", "aira_jax.design", f"run_dir={tmp_path / 'runs'}", "run_id=d",
                              *listops(steps=10**6)], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
  lines: list[str] = []
  reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stderr), daemon=True)
  reader.start()
  deadline = time.monotonic() + 120
  while not any(line.startswith("design: 1 agents") for line in lines):
    if process.poll() is not None or time.monotonic() > deadline:
      process.kill()
      pytest.fail("the search did not start:\n" + "\n".join(lines))
    time.sleep(0.05)
  time.sleep(3)  # the candidate's process is training
  sent = time.monotonic()
  os.kill(process.pid, signal.SIGINT)
  assert process.wait(timeout=60) == 130
  assert time.monotonic() - sent < 20
  reader.join(timeout=10)
  assert "Traceback" not in "\n".join(lines)
  assert lines[-1] == (f"interrupted; finished work is saved in {run}. Resume with: python -m aira_jax.design run "
                       f"--resume {run}")
  assert len(Journal.load(run / "journal.jsonl")) == 0
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.evaluations() == []  # the killed candidate is not recorded as failed
  assert "**The run was interrupted during the search stage**" in (run / "report.md").read_text()


def test_an_evaluator_fault_is_not_blamed_on_the_candidate(tmp_path, monkeypatch, capsys):
  def no_space(*args, **kwargs):
    raise OSError("No space left on device")

  monkeypatch.setattr(session, "EvaluationQueue", functools.partial(EvaluationQueue, retry_pause_s=0))
  monkeypatch.setattr(evaluator, "run_sandboxed", no_space)
  run = tmp_path / "runs" / "d"
  assert main(["--quiet", f"run_dir={tmp_path / 'runs'}", "run_id=d", *listops(steps=10)]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[1].startswith("error: 4 evaluation(s) failed for infrastructure reasons (not the candidates' fault, "
                           "not recorded as their results): the design evaluator failed on candidate ")
  assert err[1].endswith("OSError: No space left on device (failed 3 times)")
  assert err[2] == (f"finished work is saved in {run}; after fixing the cause, resume with: python -m "
                    f"aira_jax.design run --resume {run}")
  assert len(Journal.load(run / "journal.jsonl")) == 0
  with ResultStore(run / "results.sqlite", read_only=True) as store:
    assert store.evaluations() == []
  assert not any((run / "candidates").glob("*/result.json"))
  assert "**4 evaluation(s) failed for infrastructure reasons**" in (run / "report.md").read_text()


def test_an_unusable_sandbox_fails_before_the_run_directory_exists(tmp_path, monkeypatch, capsys):
  from aira_jax.design import search
  from aira_jax.design.sandbox import SandboxUnavailable

  def unusable(isolation):
    raise SandboxUnavailable("bwrap cannot create user namespaces here")

  monkeypatch.setattr(search, "resolve_isolation", unusable)
  assert main([f"run_dir={tmp_path / 'runs'}", "sandbox.isolation=bwrap"]) == 2
  assert capsys.readouterr().err == ("error: bwrap cannot create user namespaces here; set sandbox.isolation=auto or "
                                     "process to run without it\n")
  assert not (tmp_path / "runs").exists()
