"""Tests for the metric loggers and the progress display."""

import io
import json
import sys

import jax.numpy as jnp
import pytest

from aira_jax.train.loggers import (JsonlLogger, MetricLogger, MultiLogger, ProgressDisplay, StdoutLogger,
                                    TensorBoardLogger, make_loggers, to_floats)


class FakeClock:
  """A clock the test advances by hand."""

  def __init__(self):
    self.now = 100.0

  def __call__(self) -> float:
    return self.now


class RecordingLogger:

  def __init__(self):
    self.calls, self.closed = [], False

  def log(self, step, metrics):
    self.calls.append((step, metrics))

  def close(self):
    self.closed = True


def test_jsonl_lines_parse_and_hold_the_values(tmp_path):
  path = tmp_path / "run" / "metrics.jsonl"
  logger = JsonlLogger(path)
  logger.log(1, {"loss": jnp.float32(2.5), "lr": 1e-3})
  logger.log(2, {"loss": float("nan")})
  assert len(path.read_text().splitlines()) == 2  # Flushed before close.
  logger.close()
  first, second = [json.loads(line) for line in path.read_text().splitlines()]
  assert first["step"] == 1 and first["metrics"] == {"loss": 2.5, "lr": 1e-3} and first["time"] > 0
  assert second == {"step": 2, "time": second["time"], "metrics": {"loss": "nan"}}
  JsonlLogger(path).close()  # Reopening appends (a resumed run) rather than truncating.
  assert len(path.read_text().splitlines()) == 2


def test_stdout_line_format_and_rates():
  stream, clock = io.StringIO(), FakeClock()
  logger = StdoutLogger(every=10, tokens_per_step=2048, stream=stream, clock=clock)
  logger.log(10, {"loss": jnp.array(2.34567), "lr": 3e-4, "grad_norm": 1.0})
  clock.now += 2.0
  logger.log(15, {"loss": 9.0})  # Not a multiple of `every`: skipped.
  logger.log(20, {"loss": 2.25})
  lines = stream.getvalue().splitlines()
  assert lines == ["step 10 | loss 2.346 | lr 3.000e-04 | grad_norm 1",
                   "step 20 | loss 2.25 | 5.00 step/s | 10.2k tok/s"]
  assert isinstance(logger, MetricLogger)


def test_stdout_defaults_to_sys_stdout(capsys):
  StdoutLogger().log(3, {"loss": 1.5})
  assert capsys.readouterr().out == "step 3 | loss 1.5\n"


def test_multilogger_fans_out_converted_floats():
  a, b = RecordingLogger(), RecordingLogger()
  multi = MultiLogger([a, b])
  multi.log(7, {"loss": jnp.float32(1.5)})
  multi.close()
  assert a.calls == b.calls == [(7, {"loss": 1.5})]
  assert type(a.calls[0][1]["loss"]) is float
  assert a.closed and b.closed
  assert to_floats({"x": jnp.ones(())}) == {"x": 1.0}


def test_make_loggers_by_name(tmp_path, capsys):
  loggers = make_loggers(["stdout", "jsonl"], tmp_path)
  assert [type(x) for x in loggers.loggers] == [StdoutLogger, JsonlLogger]
  loggers.log(1, {"loss": 3.0})
  loggers.close()
  assert "step 1 | loss 3" in capsys.readouterr().out
  assert json.loads((tmp_path / "metrics.jsonl").read_text())["metrics"] == {"loss": 3.0}
  with pytest.raises(ValueError, match="unknown logger.*'wandb'.*stdout"):
    make_loggers(["wandb"], tmp_path)


def test_tensorboard_without_a_library_names_what_to_install(tmp_path, monkeypatch):
  for name in ("tensorboardX", "torch", "torch.utils.tensorboard", "tensorflow"):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError.
  with pytest.raises(ImportError, match="pip install tensorboardX"):
    TensorBoardLogger(tmp_path / "tb")
  with pytest.raises(ImportError, match="tensorboardX, torch.utils.tensorboard, tensorflow"):
    make_loggers(["tensorboard"], tmp_path)


def test_tensorboard_uses_the_first_importable_writer(tmp_path, monkeypatch):
  written = []

  class FakeWriter:

    def __init__(self, logdir):
      self.logdir = logdir

    def add_scalar(self, name, value, global_step):
      written.append((name, value, global_step))

    def flush(self):
      pass

    def close(self):
      written.append("closed")

  fake_module = type(sys)("tensorboardX")
  fake_module.SummaryWriter = FakeWriter
  monkeypatch.setitem(sys.modules, "tensorboardX", fake_module)
  logger = TensorBoardLogger(tmp_path / "tb")
  logger.log(5, {"loss": jnp.float32(0.5)})
  logger.close()
  assert logger.backend == "tensorboardX" and written == [("loss", 0.5, 5), "closed"]


def test_progress_display_on_a_non_tty_stream():
  stream, clock = io.StringIO(), FakeClock()
  progress = ProgressDisplay(100, stream, tokens_per_step=1000, every=50, clock=clock)
  for step in range(1, 101):
    progress.update(step, loss=jnp.float32(4.0 - step / 100))
    clock.now += 0.5
  progress.close()
  lines = stream.getvalue().splitlines()
  assert "\r" not in stream.getvalue()
  # Rates average from the first update (step 1 at t=0): 49 steps in 24.5 s = 2 steps/s, 2k tokens/s.
  assert lines == ["step  50/100 ( 50%) | loss 3.5000 | 2.0k tok/s | elapsed 0:00:24 | eta 0:00:25",
                   "step 100/100 (100%) | loss 3.0000 | 2.0k tok/s | elapsed 0:00:50 | eta 0:00:00"]


class FakeTTY(io.StringIO):

  def isatty(self):
    return True


def test_progress_display_redraws_one_line_on_a_tty():
  stream, clock = FakeTTY(), FakeClock()
  progress = ProgressDisplay(10, stream, clock=clock)
  progress.update(1, loss=2.0)
  clock.now += 1.0
  progress.update(2)
  progress.close()
  text = stream.getvalue()
  assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
  assert "step  1/10 ( 10%) | loss 2.0000 | elapsed 0:00:00 | eta ?" in text
  assert "step  2/10 ( 20%) | elapsed 0:00:01 | eta 0:00:08" in text
