"""Training: the device mesh and sharding rules, optimizers and schedules, the one jit'd train step, grain input
pipelines, orbax checkpoints, compile-ahead preflight, metric loggers, the training loop and multi-host start-up.

Submodules: mesh, step, optimizers, data (and sources), evaluate, checkpoint, preflight, loggers (and progress),
trainer, distributed.
"""

from aira_jax.train.mesh import (MeshConfig, batch_sharding, make_mesh, param_shardings, place_train_state,
                                 tree_shardings)
from aira_jax.train.optimizers import OptimizerConfig, lr_multiplier, lr_schedule, make_optimizer
from aira_jax.train.step import jit_eval_step, jit_train_step, lm_loss, train_step
from aira_jax.train.trainer import Budget, Trainer, TrainResult, train

__all__ = ["Budget", "MeshConfig", "OptimizerConfig", "TrainResult", "Trainer", "batch_sharding", "jit_eval_step",
           "jit_train_step", "lm_loss", "lr_multiplier", "lr_schedule", "make_mesh", "make_optimizer",
           "param_shardings", "place_train_state", "train", "train_step", "tree_shardings"]
