"""The Long Range Arena design tasks: "lra-listops", "lra-text", "lra-retrieval" (AIRA-Design's `model.py` tasks).

The agent rewrites `model.py`, a sequence-mixing mechanism; the fixed harness (`lra_harness`) wraps it in the
backbone of `lra_backbone`, trains it briefly and scores validation accuracy (test accuracy is reported, never
searched on). Defaults are tiny, for a CPU: a candidate compiles in seconds and trains for at most
`train_seconds` (60) or `steps` (400) steps; LRA's own sizes (length 2000 / 4096 / 4000, 96k examples, 5-6
layers of width 128-512) are options away.

Options of every factory: setting ("fixed" | "configurable"), num_train, num_validation, num_test, seq_len,
steps, batch_size, lr, weight_decay, warmup_fraction, d_model, num_heads, num_layers, ffn_mult, seed,
train_seconds, lowering ("auto": cross-lower only Pallas-using candidates | "always" | "never"), timeout_s.
ListOps also takes min_length and max_depth (generator; expressions have min_length < length < seq_len) and an
optional path (the released basic_{train,val,test}.tsv); Text and Retrieval need path (ValueError otherwise).
The task's template is the softmax seed; its `seeds` are every mechanism of `aira_jax.design.mechanisms`.
"""

from __future__ import annotations

import pathlib
from typing import Any

from aira_jax.design.mechanisms import mechanism_source, seed_sources
from aira_jax.design.tasks import register_design_task
from aira_jax.design.tasks.base import DesignTask
from aira_jax.design.tasks.lra_backbone import HYPERPARAMETER_RANGES
from aira_jax.tasks.lra.tasks import WHERE

COMMON = dict(setting="fixed", num_validation=500, num_test=500, steps=400, batch_size=32, lr=2e-3,
              weight_decay=0.01, warmup_fraction=0.1, d_model=64, num_heads=4, num_layers=2, ffn_mult=2, seed=0,
              train_seconds=60.0, lowering="auto")
TASK_DEFAULTS = {
    "listops": dict(num_train=4000, seq_len=128, min_length=16, max_depth=10, path=None),
    "text": dict(num_train=4000, seq_len=512),
    "retrieval": dict(num_train=4000, seq_len=256),
}
GOALS = {
    "listops": "ListOps: nested MIN / MAX / MED / SUM-mod-10 expressions over digits, e.g. `[MAX 4 3 [MIN 2 3 ] 1 "
               "0 ]`; predict the value (10 classes). Tokens: 0 pad, 1-10 digits, 11-14 operators, 15 `]`.",
    "text": "Text: byte-level IMDb sentiment (2 classes); tokens are bytes + 1, 0 is padding.",
    "retrieval": "Retrieval: do two byte-level AAN papers cite each other (2 classes)? A dual encoder: both "
                 "documents go through the same model; the head sees [u, v, u*v, u-v].",
}


def _settings(task: str, path, options: dict[str, Any]) -> dict[str, Any]:
  settings = {**COMMON, **TASK_DEFAULTS[task], "task": task, "path": None if path is None else str(path)}
  unknown = sorted(set(options) - set(settings) - {"timeout_s"})
  if unknown:
    raise ValueError(f"unknown option(s) {unknown} for lra-{task}; known: {', '.join(sorted(settings))}, timeout_s")
  settings.update({k: v for k, v in options.items() if k != "timeout_s"})
  if settings["setting"] not in ("fixed", "configurable"):
    raise ValueError(f"setting must be 'fixed' or 'configurable', got {settings['setting']!r}")
  if settings["lowering"] not in ("auto", "always", "never"):
    raise ValueError(f"lowering must be 'auto', 'always' or 'never', got {settings['lowering']!r}")
  if settings["d_model"] % settings["num_heads"]:
    raise ValueError(f"num_heads={settings['num_heads']} must divide d_model={settings['d_model']}")
  return settings


def _ranges() -> str:
  return "\n".join(f"  - `{key}`: {kind.__name__} in [{low}, {high}]"
                   for key, (kind, low, high) in HYPERPARAMETER_RANGES.items())


def describe(settings: dict[str, Any]) -> str:
  """The Markdown task description shown to the agent."""
  s = settings
  configurable = s["setting"] == "configurable"
  hyper = (f"**Setting: configurable.** `model.py` may set `HYPERPARAMETERS = {{...}}` with any of these keys "
           f"(others, wrong types or out-of-range values fail the interface check):\n{_ranges()}\n"
           "`num_heads` must divide `d_model`. Keys left out keep the defaults below."
           if configurable else
           "**Setting: fixed.** The hyper-parameters below are fixed; a `HYPERPARAMETERS` dict is ignored.")
  return f"""# Design a sequence-mixing mechanism for Long Range Arena ({s['task']})

{GOALS[s['task']]} Goal: the highest **validation accuracy** (`val_accuracy`) after a short, fixed training run.
Test accuracy is reported at the end only.

## What you write: `model.py`
Define EITHER
1. `class Mixer(nnx.Module)` (`from flax import nnx`) with `__init__(self, d_model: int, num_heads: int, *,
   rngs: nnx.Rngs)` and `__call__(self, x, mask)`: `x` is (batch, seq, d_model) float32, `mask` is
   (batch, seq) bool, True on real tokens (sequences are right-padded). Return (batch, seq, d_model). The task
   is classification: mixing may be bidirectional (no causal constraint). Create parameters with
   `nnx.Param(...)` from `rngs.params()`; `nnx.Dropout(rate, rngs=rngs)` works (the harness switches train
   and eval modes). OR
2. only `score_mod(score, q_idx, kv_idx, head) -> score` and/or `mask_mod(q_idx, kv_idx, head) -> bool`
   (FlexAttention style). The harness then uses standard bidirectional multi-head attention through the fused
   `pallas_kernels.flash_attention` kernel with your hooks (no kernel code needed): `score` is float32
   (Q, K), `q_idx` int32 (Q, 1), `kv_idx` int32 (1, K), `head` an int32 scalar; return the same shape
   (mask: True = keep). Hooks must be elementwise, built from `jnp` ops, and may close over Python numbers but
   not arrays; prefer `jax.lax.div` to `//` on indices. Padded keys are visible to hooked attention.
   (When `Mixer` is defined it is used, and any hooks are yours to call from it.)
Use any of jax, jax.numpy, flax.nnx, numpy, math and `pallas_kernels` (flash_attention, ssd,
selective_scan: "auto" runs plain XLA on CPU and Pallas kernels on GPU/TPU). Code that uses Pallas must also
lower for TPU and CUDA (the harness checks this from the CPU).

## The fixed backbone (you cannot change it)
token embedding + fixed sinusoidal positions -> `num_layers` x [x + Mixer(RMSNorm(x), mask);
x + MLP(RMSNorm(x))] (GELU MLP, width `ffn_mult * d_model`) -> RMSNorm -> mean over real tokens -> linear
classifier{' (dual tower: dense + relu + linear on [u, v, u*v, u-v])' if s['task'] == 'retrieval' else ''}.
Training: AdamW (lr {s['lr']}, weight decay {s['weight_decay']}), warm-up {s['warmup_fraction']:.0%} then cosine,
gradient clipping 1, batch {s['batch_size']}, {s['steps']} steps or {s['train_seconds']:g} s, whichever comes
first. Defaults: d_model {s['d_model']}, num_heads {s['num_heads']}, num_layers {s['num_layers']}, ffn_mult
{s['ffn_mult']}. Data: {s['num_train']} train / {s['num_validation']} validation / {s['num_test']} test
examples of length {s['seq_len']} (padded).

{hyper}

## Checks, in order (the first failure ends the run; its message comes back to you)
import -> interface (the definitions above, shapes via abstract evaluation) -> lowering (only for Pallas
users) -> compile -> numerics (finite forward and first step) -> train (a non-finite loss is "diverged")
-> score (val_accuracy; also the majority-class accuracy `chance` and the train loss).
"""


def _make(task: str, path, options: dict[str, Any]) -> DesignTask:
  settings = _settings(task, path, options)
  timeout = options.get("timeout_s", 2 * float(settings["train_seconds"]) + 300.0)
  return DesignTask(name=f"lra-{task}", description=describe(settings), filename="model.py",
                    template=mechanism_source("softmax"), metric="val_accuracy", lower_is_better=False,
                    harness_module="aira_jax.design.tasks.lra_harness", settings=settings,
                    final_metric="test_accuracy", timeout_s=timeout, seeds=seed_sources())


def _need_path(task: str, path) -> None:
  if path is None or not pathlib.Path(path).exists():
    where = "" if path is None else f" ({path} does not exist)"
    raise ValueError(f"lra-{task} needs path={where}: {WHERE[task]}")


def make_listops(path=None, **options) -> DesignTask:
  """ListOps generated in the candidate's process (or read from `path`, the released TSVs)."""
  if path is not None and not pathlib.Path(path).is_dir():
    raise ValueError(f"lra-listops path={path} is not a directory with basic_train.tsv, basic_val.tsv, "
                     "basic_test.tsv (leave path out to generate ListOps)")
  return _make("listops", path, options)


def make_text(path=None, **options) -> DesignTask:
  """Byte-level IMDb from `path` (the aclImdb directory)."""
  _need_path("text", path)
  return _make("text", path, options)


def make_retrieval(path=None, **options) -> DesignTask:
  """AAN retrieval from `path` (the directory with new_aan_pairs.{train,eval,test}.tsv)."""
  _need_path("retrieval", path)
  return _make("retrieval", path, options)


register_design_task("lra-listops", make_listops)
register_design_task("lra-text", make_text)
register_design_task("lra-retrieval", make_retrieval)
