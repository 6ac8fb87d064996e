"""Tests for aira_jax.faults: the retry rule of infrastructure faults, and Ctrl-C (a flag first, then at once)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aira_jax.faults import (InfrastructureError, Interrupted, check_stop, import_entry_point, request_stop,
                             retry_infrastructure, stop_on_ctrl_c, stop_requested)


def failing(*errors):
  """A function raising `errors` one per call, then returning the number of calls."""
  calls = []

  def call():
    calls.append(1)
    if len(calls) <= len(errors):
      raise errors[len(calls) - 1]
    return len(calls)

  return call, calls


def test_a_candidate_error_is_raised_at_once():
  call, calls = failing(ValueError("invalid layout"))
  with pytest.raises(ValueError, match="invalid layout"):
    retry_infrastructure(call, pause_s=0)
  assert len(calls) == 1


def test_other_errors_are_retried_then_infrastructure_errors():
  call, calls = failing(RuntimeError("a"), OSError("b"))
  assert retry_infrastructure(call, pause_s=0) == 3
  call, calls = failing(*[RuntimeError("device lost")] * 3)
  with pytest.raises(InfrastructureError, match=r"^RuntimeError: device lost \(failed 3 times\)$"):
    retry_infrastructure(call, retries=2, pause_s=0)
  assert len(calls) == 3
  call, calls = failing(ValueError("here not the candidate's"))
  with pytest.raises(InfrastructureError, match=r"ValueError: here not the candidate's \(failed 1 times\)"):
    retry_infrastructure(call, retries=0, pause_s=0, candidate_errors=())


def test_an_interrupt_is_not_retried():
  call, calls = failing(Interrupted("stop"))
  with pytest.raises(Interrupted):
    retry_infrastructure(call, pause_s=0)
  assert len(calls) == 1


def test_the_handler_sets_the_flag_and_is_restored():
  handler = signal.getsignal(signal.SIGINT)
  with stop_on_ctrl_c():
    with stop_on_ctrl_c():  # nested: the outer handler stays
      signal.raise_signal(signal.SIGINT)
    assert stop_requested()
    with pytest.raises(Interrupted):
      check_stop()
    call, calls = failing()
    with pytest.raises(Interrupted):  # no new try once stopping
      retry_infrastructure(call)
    assert not calls
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C without last words
      signal.raise_signal(signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is handler and not stop_requested()
  with stop_on_ctrl_c():
    request_stop()
  assert not stop_requested()  # cleared on exit


def test_a_second_ctrl_c_prints_the_last_words_and_exits_at_once(tmp_path):
  script = textwrap.dedent("""
      import time
      from aira_jax.faults import stop_on_ctrl_c
      with stop_on_ctrl_c(last_words=lambda: "interrupted; resume with: X --resume RUN"):
        print("ready", flush=True)
        while True:  # a loop that never checks the flag (a long compilation)
          time.sleep(0.05)
  """)
  process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, text=True)
  assert process.stdout.readline() == "ready\n"
  os.kill(process.pid, signal.SIGINT)
  time.sleep(0.5)
  assert process.poll() is None  # the first Ctrl-C only asks
  os.kill(process.pid, signal.SIGINT)
  _, err = process.communicate(timeout=10)
  assert process.returncode == 130
  assert err == "interrupted; resume with: X --resume RUN\n"


def test_ctrl_c_while_the_entry_point_imports_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
  """A SIGINT during the imports is recorded, not raised (raised, it can land in a garbage-collection callback
  and be dropped): after the import the process exits 130 with one line; without one, `main` comes back."""
  (tmp_path / "slow_entry.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
                                          "def main():\n  return 0\n")
  (tmp_path / "quiet_entry.py").write_text("def main():\n  return 7\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  before = signal.getsignal(signal.SIGINT)
  with pytest.raises(SystemExit) as exit_info:
    import_entry_point("slow_entry")
  assert exit_info.value.code == 130
  assert capsys.readouterr().err == "interrupted before the run directory was made; nothing to resume\n"
  assert import_entry_point("quiet_entry")() == 7
  assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
