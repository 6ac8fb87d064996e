"""One process of the two-process training test (run by multihost_test.py; not a test file itself).

Usage: python two_process_worker.py PROCESS_ID NUM_PROCESSES PORT   (NUM_PROCESSES=1: the reference run)
Each process has 2 CPU devices; it trains a tiny LM for a few steps on its slice of every global batch and
prints the per-step losses as one JSON line.
"""

import json
import os
import sys

process_id, num_processes, port = (int(a) for a in sys.argv[1:4])
devices_per_process = 4 // num_processes
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
os.environ["JAX_PLATFORMS"] = "cpu"

from aira_jax.train.distributed import initialize  # noqa: E402

initialize(f"127.0.0.1:{port}", num_processes, process_id, timeout_s=60)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from aira_jax.models import LanguageModel, preset_config  # noqa: E402
from aira_jax.train import MeshConfig, OptimizerConfig, make_mesh  # noqa: E402
from aira_jax.train.data import ArraySource, make_loader  # noqa: E402
from aira_jax.train.trainer import Budget, train  # noqa: E402

# Learnable rows (next token = this token + 1, mod 64) from shuffled random starts.
tokens = ((np.random.default_rng(0).integers(0, 64, (64, 1)) + np.arange(17)) % 64).astype(np.int32)
source = ArraySource({"inputs": tokens[:, :-1], "targets": tokens[:, 1:]})
loader = make_loader(source, batch_size=8, seed=0, process_index=process_id, process_count=num_processes)
model = LanguageModel("AMSM", preset_config("tiny", ssm_chunk_size=8), rngs=nnx.Rngs(0))
optimizer = OptimizerConfig(lr=3e-3, warmup_steps=0, schedule="constant")


class Losses:
  def __init__(self):
    self.values = []

  def log(self, step, metrics):
    self.values.append(metrics["loss"])

  def close(self):
    pass


losses = Losses()
result = train(model, iter(loader), optimizer, Budget(max_steps=6), mesh=make_mesh(MeshConfig(data=2, fsdp=2)),
               logger=losses, log_every=1)
print(json.dumps({"process": process_id, "devices": jax.device_count(),
                  "losses": losses.values, "status": result.status}), flush=True)
