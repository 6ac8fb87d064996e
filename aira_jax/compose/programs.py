"""The models compose trains, and how one layout is trained and scored with the project's one training loop.

A `LayoutProgram` holds one model graph for a fixed (task, model config, depth, space) and a `Trainer`
(aira_jax/train/trainer.py: the one step, loop and preflight) on its mesh:
- "switch" (`layout=None`): the `SwitchLanguageModel` of the space; the layout's kinds are a model input, so
  one compiled step serves every layout of the search (and every run length: the schedule is an input too);
- "dedicated" (`layout=...`): the layout's own `LanguageModel`, compiled for it alone.
Both start a layout from the same parameters: the dedicated model's initialisation from the seed, which a
switch program places in the slots the layout uses (`switch_params`), so the two modes train the same
function and give the same losses up to floating-point order. Every run uses the configured optimizer
(`OptimizerConfig`; compose's default is `compose.config.PROXY_OPTIMIZER`) and the same data path
(`make_loader`: a seeded shuffle of the task's train split, so the seed orders the batches and repeats of a seed
see the same batches).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from aira_jax.compose.switch_model import SwitchLanguageModel, layout_kinds, switch_params
from aira_jax.layout import Layout
from aira_jax.model_config import ModelConfig
from aira_jax.models import LanguageModel
from aira_jax.tasks.base import Task
from aira_jax.train.data import ArraySource, make_loader
from aira_jax.train.mesh import MeshConfig, make_mesh
from aira_jax.train.optimizers import OptimizerConfig, lr_multiplier, make_optimizer
from aira_jax.train.step import ModelInputs
from aira_jax.train.trainer import Budget, Trainer, TrainResult


class LayoutProgram:
  """Trains and scores layouts of `depth` layers in `space` on `task`; see the module docstring.

  Args:
    task: an "lm"-head task (its metrics name the score).
    config: the model config (vocab_size must equal the task's).
    depth, space: layouts this program trains.
    layout: None for switch mode (any layout of `depth` in `space`), else the one layout (dedicated mode).
    optimizer: the optimizer config (`evaluator.optimizer` / `scale.optimizer`); each run's schedule spans
      its own steps.
    mesh: where it trains (default: the default device alone).
    device_memory: bytes per device for the preflight ("auto": the device's own limit; None: not checked).
  """

  def __init__(self, task: Task, config: ModelConfig, *, depth: int, space: str, layout: Layout | None,
               optimizer: OptimizerConfig, mesh=None, device_memory: int | None | str = "auto"):
    self.task, self.config, self.depth, self.space, self.layout = task, config, depth, space, layout
    self.optimizer = optimizer
    graphdef, self.abstract_params = nnx.split(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))
    mesh = mesh if mesh is not None else make_mesh(MeshConfig(), devices=[_default_device()])
    label = layout.text if layout is not None else f"switch {space} x {depth}"
    self.trainer = Trainer(graphdef, make_optimizer(optimizer, self.abstract_params), mesh=mesh,
                           metrics_fn=task.metrics, device_memory=device_memory, label=label)

  @property
  def compile_seconds(self) -> float:
    """Seconds spent compiling the train and eval steps so far."""
    return self.trainer.compile_seconds

  def _build(self, rngs: nnx.Rngs) -> nnx.Module:
    if self.layout is None:
      return SwitchLanguageModel(self.config, self.depth, self.space, rngs=rngs)
    return LanguageModel(self.layout, self.config, rngs=rngs)

  def model_inputs(self, layout: Layout) -> ModelInputs:
    """The model's inputs besides the tokens: the layout's kinds in switch mode, none in dedicated mode."""
    if self.layout is not None:
      if layout != self.layout:
        raise ValueError(f"this dedicated program trains {self.layout.text}, not {layout.text}")
      return {}
    return {"kinds": layout_kinds(layout, self.space, self.depth)}

  def init(self, layout: Layout, seed: int):
    """Fresh (params, opt_state) of `layout` from `seed` on the mesh: the dedicated model's initialisation
    (built eagerly: a jitted init would compile per program), in the switch form in switch mode."""
    params = nnx.split(LanguageModel(layout, self.config, rngs=nnx.Rngs(seed)))[1]
    if self.layout is None:
      params = switch_params(params, self.abstract_params, self.model_inputs(layout)["kinds"])
    return self.trainer.init(params)

  def train(self, layout: Layout, seed: int, *, steps: int, batch_size: int, check_every: int = 10,
            analytic_flops_per_step: float | None = None) -> TrainResult:
    """Trains `layout` from `seed` for `steps` steps of `batch_size` rows of the task's train split (in the
    seed's order), checking the loss every `check_every` steps; the result's status says how it ended."""
    params, opt_state = self.init(layout, seed)
    batches = make_loader(ArraySource.from_split(self.task.splits()["train"]), batch_size=batch_size, seed=seed,
                          read_threads=0, prefetch_buffer_size=0)
    return self.trainer.run(params, opt_state, batches, Budget(max_steps=steps), check_every=check_every,
                            lr_scale=functools.partial(lr_multiplier, self.optimizer, total_steps=steps),
                            model_inputs=self.model_inputs(layout), analytic_flops_per_step=analytic_flops_per_step)

  def score(self, params, layout: Layout, inputs: np.ndarray, targets: np.ndarray, batch_size: int
            ) -> dict[str, float]:
    """The task's metrics of `params` over the rows (inputs, targets), `batch_size` rows at a time."""
    return self.trainer.score(params, inputs, targets, batch_size, self.model_inputs(layout))


def _default_device() -> jax.Device:
  """The device `jax.default_device` names here (a thread of the evaluator sets its own), else the first."""
  device = jax.config.jax_default_device
  return device if isinstance(device, jax.Device) else jax.local_devices()[0]
