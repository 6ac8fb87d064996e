"""The fixed LRA evaluation of one candidate `model.py`: `python -m aira_jax.design.tasks.lra_harness settings.json`.

Run in the candidate's working directory (model.py beside settings.json). Stages, each with a start and an
end record (`aira_jax.design.records`), stopping at the first failure:
  import     load model.py (a SyntaxError or any exception: the traceback's tail).
  interface  `Mixer` (an nnx.Module class) or hooks (`score_mod` / `mask_mod`); `HYPERPARAMETERS` validated in
             the "configurable" setting (ignored, with a note, in "fixed"); hooks, the Mixer and the whole
             backbone evaluated abstractly (`nnx.eval_shape` / `jax.eval_shape`) for shapes.
  lowering   only when Pallas is used (hooks mode, or "pallas" in the source): the hooked attention (hooks) or
             the Mixer (forward and gradient) exported for "tpu" and "cuda" from this host.
  compile    the jit'd train and eval steps lowered and compiled (seconds recorded), and the preflight: the
             train step's memory per device (XLA's analysis) against the device's, a candidate that cannot fit
             failing here as "does not fit: needs X of Y per device" before any data is read; its FLOPs and
             memory are recorded.
  numerics   the data read from `settings["data_dir"]` (training inputs and labels, validation and test
             inputs: no held-out labels exist in this process); one forward on validation inputs (finite,
             right shape) and the first train step (finite loss and gradient norm).
  train      steps until `steps` or `train_seconds`; a non-finite loss fails as "diverged".
  predict    logits for every validation and then every test input, sent on the results channel
             (`aira_jax.design.channel`); reported: train_loss, steps and timings.
The trusted parent (`aira_jax.design.tasks.lra_scoring`) compares the logits with the labels it kept: the
accuracies are never computed here, and nothing this process writes can set them.
`run_stages(settings, workdir, sink=...)` is the in-process form the entry point and the tests call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import pathlib
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aira_jax.design.channel import send_array
from aira_jax.design.records import record_end, record_start
from aira_jax.design.tasks import lra_training as training
from aira_jax.design.tasks.lra_backbone import Backbone, HookAttention, check_hooks, validate_hyperparameters
from aira_jax.train.data import ArraySource, global_batch, make_loader
from aira_jax.train.mesh import MeshConfig, make_mesh
from aira_jax.train.optimizers import lr_multiplier, make_optimizer
from aira_jax.train.preflight import PreflightError
from aira_jax.train.step import split_params
from aira_jax.train.trainer import Budget, Trainer

HYPER_KEYS = ("d_model", "num_heads", "num_layers", "ffn_mult", "lr", "weight_decay", "warmup_fraction")
REQUIRED = HYPER_KEYS + ("task", "setting", "seq_len", "batch_size", "steps", "train_seconds", "seed", "data_dir")


class CandidateError(Exception):
  """A problem of the candidate found by a check: recorded with its message alone (no traceback)."""


class _Stop(Exception):
  pass


@dataclasses.dataclass
class StageResult:
  stage: str
  ok: bool
  seconds: float
  error: str | None = None
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
  if isinstance(exc, CandidateError):
    return str(exc)
  return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))[-2500:]


class _Run:
  """State shared by the stages of one candidate."""

  def __init__(self, settings: dict[str, Any], workdir: pathlib.Path, verbose: bool):
    missing = [key for key in REQUIRED if key not in settings]
    if missing:
      raise ValueError(f"settings lack {missing}; build them with aira_jax.design.tasks.make_design_task")
    self.settings, self.workdir, self.verbose = settings, workdir, verbose
    self.results: list[StageResult] = []
    self.vocab_size, self.num_classes, self.dual = training.TASKS[settings["task"]]
    self.hyper = {key: settings[key] for key in HYPER_KEYS}
    self.losses: list[float] = []

  def stage(self, name: str, fn) -> Any:
    started = record_start(name)
    if self.verbose:
      print(f"[{name}] ...", flush=True)
    try:
      value, metrics = fn()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure of the candidate is recorded
      error = _error_text(exc)
      record_end(name, started, ok=False, error=error)
      self.results.append(StageResult(name, False, time.perf_counter() - started, error))
      if self.verbose:
        print(f"[{name}] FAILED: {error.splitlines()[0] if error else ''}", flush=True)
      raise _Stop from None
    record_end(name, started, ok=True, metrics=metrics)
    self.results.append(StageResult(name, True, time.perf_counter() - started, None, metrics))
    if self.verbose:
      print(f"[{name}] ok {json.dumps(metrics, default=str)[:300]}", flush=True)
    return value

  # -- stages ---------------------------------------------------------------------------------------------------
  def load(self):
    path = self.workdir / "model.py"
    if not path.is_file():
      raise CandidateError(f"no model.py in {self.workdir}")
    self.source = path.read_text(encoding="utf-8", errors="replace")
    sys.modules.pop("model", None)
    spec = importlib.util.spec_from_file_location("model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["model"] = module
    spec.loader.exec_module(module)
    self.module = module
    return None, {}

  def make_mixer(self, d_model, num_heads, *, rngs):
    if self.mode == "mixer":
      return self.module.Mixer(d_model, num_heads, rngs=rngs)
    return HookAttention(d_model, num_heads, score_mod=self.score_mod, mask_mod=self.mask_mod, rngs=rngs)

  def build(self, rngs: nnx.Rngs) -> Backbone:
    h = self.hyper
    return Backbone(self.make_mixer, vocab_size=self.vocab_size, seq_len=self.settings["seq_len"],
                    d_model=h["d_model"], num_heads=h["num_heads"], num_layers=h["num_layers"],
                    ffn_mult=h["ffn_mult"], num_classes=self.num_classes, dual=self.dual, rngs=rngs)

  def batch_structs(self, batch: int) -> dict[str, jax.ShapeDtypeStruct]:
    seq = self.settings["seq_len"]
    structs = {"inputs": jax.ShapeDtypeStruct((batch, seq), jnp.int32),
               "targets": jax.ShapeDtypeStruct((batch,), jnp.int32)}
    if self.dual:
      structs["inputs2"] = structs["inputs"]
    return structs

  def interface(self):
    module, metrics = self.module, {}
    mixer = getattr(module, "Mixer", None)
    self.score_mod, self.mask_mod = getattr(module, "score_mod", None), getattr(module, "mask_mod", None)
    if mixer is not None:
      if not (isinstance(mixer, type) and issubclass(mixer, nnx.Module)):
        raise CandidateError(f"`Mixer` must be a class deriving from flax.nnx.Module, got {mixer!r}")
      self.mode = "mixer"
    elif self.score_mod is not None or self.mask_mod is not None:
      for name, fn in (("score_mod", self.score_mod), ("mask_mod", self.mask_mod)):
        if fn is not None and not callable(fn):
          raise CandidateError(f"`{name}` must be a function, got {type(fn).__name__}")
      self.mode = "hooks"
    else:
      raise CandidateError("model.py defines neither a `Mixer` class nor `score_mod` / `mask_mod` functions")
    metrics["mode"] = self.mode
    hyper = getattr(module, "HYPERPARAMETERS", None)
    if self.settings["setting"] == "configurable" and hyper is not None:
      try:
        self.hyper = validate_hyperparameters(hyper, self.hyper)
      except ValueError as e:
        raise CandidateError(str(e)) from None
    elif hyper:
      metrics["ignored_hyperparameters"] = sorted(hyper) if isinstance(hyper, dict) else str(hyper)
      if self.verbose:
        print("note: HYPERPARAMETERS are ignored in the fixed setting", flush=True)
    metrics["hyperparameters"] = dict(self.hyper)
    if self.mode == "hooks":
      try:
        check_hooks(self.score_mod, self.mask_mod)
      except ValueError as e:
        raise CandidateError(str(e)) from None
    b, s, d = self.settings["batch_size"], self.settings["seq_len"], self.hyper["d_model"]
    x = jax.ShapeDtypeStruct((b, s, d), jnp.float32)
    mask = jax.ShapeDtypeStruct((b, s), jnp.bool_)
    abstract = nnx.eval_shape(lambda: self.make_mixer(d, self.hyper["num_heads"], rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    out = jax.eval_shape(lambda st, x, m: nnx.merge(graphdef, st)(x, m), state, x, mask)
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != (b, s, d) or not jnp.issubdtype(out.dtype,
                                                                                                   jnp.floating):
      raise CandidateError(f"Mixer(x, mask) must return one float array of shape (batch, seq, d_model) = "
                           f"{(b, s, d)}, got {out}")
    model = nnx.eval_shape(lambda: self.build(nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    batch = self.batch_structs(b)
    logits = jax.eval_shape(lambda st, bt: nnx.merge(graphdef, st)(bt["inputs"], bt.get("inputs2")), state, batch)
    if logits.shape != (b, self.num_classes):
      raise CandidateError(f"the backbone's logits are {logits.shape}, expected {(b, self.num_classes)}")
    params = nnx.state(model, nnx.Param)
    metrics["params"] = int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
    return None, metrics

  def lowering(self):
    seq, h = self.settings["seq_len"], self.hyper["num_heads"]
    d = self.hyper["d_model"]
    metrics = {}
    for platform in ("tpu", "cuda"):
      if self.mode == "hooks":
        attention = nnx.eval_shape(lambda: HookAttention(d, h, score_mod=self.score_mod, mask_mod=self.mask_mod,
                                                         rngs=nnx.Rngs(0)))
        qkv = jax.ShapeDtypeStruct((1, seq, h, d // h), jnp.float32)
        loss = lambda q, k, v: jnp.sum(attention.attend(q, k, v, backend=training.PALLAS_BACKEND[platform]))
        fn, args = (lambda q, k, v: (loss(q, k, v), jax.grad(loss, argnums=(0, 1, 2))(q, k, v))), (qkv,) * 3
      else:
        mixer = nnx.eval_shape(lambda: self.module.Mixer(d, h, rngs=nnx.Rngs(0)))
        graphdef, params, rest = nnx.split(mixer, nnx.Param, ...)
        loss = lambda p, r, x, m: jnp.sum(nnx.merge(graphdef, p, r)(x, m))
        fn = lambda p, r, x, m: (loss(p, r, x, m), jax.grad(loss)(p, r, x, m))
        args = (params, rest, jax.ShapeDtypeStruct((1, seq, d), jnp.float32),
                jax.ShapeDtypeStruct((1, seq), jnp.bool_))
      try:
        metrics[f"{platform}_kernels"] = training.cross_lower(fn, args, platform)
      except Exception as e:  # noqa: BLE001
        raise CandidateError(f"lowering for {platform} failed: {_error_text(e)}") from None
    return None, metrics

  def compile(self):
    s = self.settings
    # "unsafe_rbg" keys: initialising with threefry compiled several times slower on CPU (tiny backbone).
    model = self.build(nnx.Rngs(jax.random.key(s["seed"], impl="unsafe_rbg")))
    model.eval()
    eval_graphdef = nnx.split(model)[0]
    model.train()
    graphdef, state = nnx.split(model)
    self.optimizer = training.optimizer_config(self.hyper["lr"], self.hyper["weight_decay"],
                                               self.hyper["warmup_fraction"])
    mesh = make_mesh(MeshConfig(), devices=jax.local_devices()[:1])
    self.trainer = Trainer(graphdef, make_optimizer(self.optimizer, split_params(state)[0]), mesh=mesh,
                           forward=training.backbone_forward, eval_graphdef=eval_graphdef,
                           metrics_fn=training.logits_only, label="the candidate")
    self.state, self.opt_state = self.trainer.init(state)
    structs = self.batch_structs(s["batch_size"])
    example = {name: np.zeros(struct.shape, struct.dtype) for name, struct in structs.items()}
    try:
      _, report, _ = self.trainer.compile(self.state, self.opt_state, global_batch(example, mesh),
                                          self.trainer.model_inputs({}))
    except PreflightError as e:
      if "does not fit" in str(e):
        raise CandidateError(str(e)) from None
      raise
    self.trainer.eval(self.state, example)  # compiles the eval step
    self.compile_seconds = self.trainer.compile_seconds
    metrics = {"compile_seconds": self.compile_seconds}
    if report.flops is not None:
      metrics["train_step_flops"] = report.flops * report.num_devices
    if report.peak_memory_bytes is not None:
      metrics["train_step_memory_bytes"] = report.peak_memory_bytes
    return None, metrics

  def numerics(self):
    s = self.settings
    started = time.perf_counter()
    self.splits = training.read_public_splits(s["data_dir"])
    metrics = {"data_seconds": time.perf_counter() - started}
    batch, _ = next(training.eval_batches(self.splits["validation"], s["batch_size"]))
    logits = np.asarray(self.trainer.eval(self.state, batch))
    if logits.shape != (s["batch_size"], self.num_classes) or not np.isfinite(logits).all():
      raise CandidateError(f"the forward pass gave non-finite or misshapen logits {logits.shape} "
                           f"(finite: {np.isfinite(logits).mean():.0%})")
    self.batches = make_loader(ArraySource.from_split(self.splits["train"]), batch_size=s["batch_size"],
                               seed=s["seed"], read_threads=0, prefetch_buffer_size=0)
    self.train_started = time.perf_counter()
    first = self._run(Budget(max_steps=1))
    loss, grad_norm = first.final_metrics.get("loss", np.nan), first.final_metrics.get("grad_norm", np.nan)
    if first.status != "completed" or not np.isfinite(loss) or not np.isfinite(grad_norm):
      raise CandidateError(f"the first train step gave loss {loss} and gradient norm {grad_norm}: not finite")
    metrics.update(first_loss=loss, grad_norm=grad_norm)
    return None, metrics

  def _run(self, budget: Budget):
    """Trains on with the project's one loop (aira_jax.train.trainer) from where the last run stopped."""
    losses = _Losses()
    result = self.trainer.run(self.state, self.opt_state, self.batches, budget, start_step=len(self.losses),
                              lr_scale=functools.partial(lr_multiplier, self.optimizer,
                                                         total_steps=self.settings["steps"]),
                              logger=losses, log_every=1)
    self.state, self.opt_state = result.params, result.opt_state
    self.losses += losses.values
    return result

  def train(self):
    s = self.settings
    remaining = s["train_seconds"] - (time.perf_counter() - self.train_started)
    if len(self.losses) < s["steps"] and remaining > 0:
      result = self._run(Budget(max_steps=s["steps"] - len(self.losses), max_seconds=remaining))
      if result.status == "diverged":
        raise CandidateError(f"diverged: {result.stop_reason}")
    self.train_seconds = time.perf_counter() - self.train_started
    return None, {"steps": len(self.losses), "train_seconds": self.train_seconds,
                  "train_loss": float(np.mean(self.losses[-10:]))}

  def logits(self, split) -> np.ndarray:
    """(examples, num_classes) float32 logits of every example of `split`, in order."""
    out = []
    for batch, real in training.eval_batches(split, self.settings["batch_size"]):
      out.append(np.asarray(self.trainer.eval(self.state, batch), np.float32)[:real])
    return np.concatenate(out, axis=0)

  def predict(self):
    for name in ("validation", "test"):
      self.sink(self.logits(self.splits[name]))
    return None, {"train_loss": float(np.mean(self.losses[-10:])), "first_train_loss": self.losses[0],
                  "steps": len(self.losses), "train_seconds": self.train_seconds,
                  "compile_seconds": self.compile_seconds, "mode": self.mode}


class _Losses:
  """A metric logger keeping every step's loss."""

  def __init__(self):
    self.values: list[float] = []

  def log(self, step: int, metrics) -> None:
    self.values.append(float(metrics["loss"]))


def run_stages(settings: dict[str, Any], workdir: str | pathlib.Path, *, stop_after: str | None = None,
               verbose: bool = False, sink: Callable[[np.ndarray], None] = send_array) -> list[StageResult]:
  """Runs the stages on `workdir`/model.py in this process (restoring sys.path and sys.modules["model"]);
  returns one StageResult per stage run, the last one failed if any failed. `stop_after` ends early. The
  predict stage passes the validation and then the test logits to `sink` (default: the results channel)."""
  workdir = pathlib.Path(workdir).resolve()
  run = _Run(dict(settings), workdir, verbose)
  run.sink = sink
  saved_path, saved_model = list(sys.path), sys.modules.get("model")
  sys.path.insert(0, str(workdir))
  stages = [("import", run.load), ("interface", run.interface), ("lowering", run.lowering),
            ("compile", run.compile), ("numerics", run.numerics), ("train", run.train), ("predict", run.predict)]
  try:
    for name, fn in stages:
      if name == "lowering" and not _uses_pallas(run, settings.get("lowering", "auto")):
        continue
      run.stage(name, fn)
      if name == stop_after:
        break
  except _Stop:
    pass
  finally:
    sys.path[:] = saved_path
    sys.modules.pop("model", None)
    if saved_model is not None:
      sys.modules["model"] = saved_model
  return run.results


def _uses_pallas(run: _Run, lowering: str) -> bool:
  if lowering in ("never", "always"):
    return lowering == "always"
  return run.mode == "hooks" or "pallas" in run.source.lower()


def main(argv: list[str] | None = None) -> int:
  """Entry point: settings.json path as the only argument; exit status 0 when every stage ran and passed."""
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 1:
    print("usage: python -m aira_jax.design.tasks.lra_harness settings.json", file=sys.stderr)
    return 2
  settings = json.loads(pathlib.Path(argv[0]).read_text(encoding="utf-8"))
  results = run_stages(settings, pathlib.Path.cwd(), verbose=True)
  return 0 if results and all(r.ok for r in results) and results[-1].stage == "predict" else 1


if __name__ == "__main__":
  sys.exit(main())
