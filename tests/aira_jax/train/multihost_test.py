"""Two CPU processes on 127.0.0.1 (gloo collectives) train the same tiny model to the same losses as one
process with the same 4 devices."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

WORKER = pathlib.Path(__file__).with_name("two_process_worker.py")
ROOT = pathlib.Path(__file__).resolve().parents[3]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_workers(num_processes: int) -> list[dict]:
  port = free_port()
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(i), str(num_processes), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for i in range(num_processes)]
  outputs = []
  for proc in procs:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    outputs.append(json.loads(out.strip().splitlines()[-1]))
  return outputs


def test_two_processes_train_like_one():
  (single,) = run_workers(1)
  first, second = run_workers(2)
  assert single["devices"] == first["devices"] == second["devices"] == 4
  assert first["status"] == second["status"] == single["status"] == "completed"
  assert len(single["losses"]) == 6
  np.testing.assert_allclose(first["losses"], single["losses"], rtol=1e-5)
  np.testing.assert_allclose(second["losses"], first["losses"], rtol=0, atol=0)
  assert single["losses"][-1] < single["losses"][0]
