"""The scale stage on its own: baselines only (no search results), both trainers, resume, pooling, widths."""

import dataclasses
import math

import numpy as np
import pytest

from aira_jax.compose import api
from aira_jax.compose.config import ComposeConfig, ConfigError, EvaluatorConfig, ScaleConfig
from aira_jax.compose.scale import _PointTrainer, pool_results, scale_task, seed_adjusted_means, width_config
from aira_jax.layout import Layout
from aira_jax.models.presets import preset_config
from aira_jax.results.store import ResultStore


@pytest.fixture
def corpus(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_text("\n\n".join(f"document {i}: " + " ".join(f"w{(i * j) % 37}" for j in range(30))
                              for i in range(150)))
  return path


def _config(tmp_path, corpus, **scale_changes) -> ComposeConfig:
  settings = dict(target_depth=6, baselines=("llama", "composer"), widths=(8, 12, 16), head_dim=4,
                  budgets=(2e7, 4e7), seq_len=16, batch_size=8, min_steps=1, eval_tokens=128, bootstrap=20,
                  task_options={"path": str(corpus)})
  scale = ScaleConfig(**{**settings, **scale_changes})
  evaluator = EvaluatorConfig(model={"d_model": 16, "num_heads": 2, "ffn_dim": 32, "ssm_head_dim": 8})
  return ComposeConfig(scale=scale, evaluator=evaluator, run_dir=str(tmp_path / "runs"), run_id="scale")


def test_baselines_only_study(tmp_path, corpus):
  config, files = api.open_run(_config(tmp_path, corpus, trainer="switch"))
  result = api.scale(config, files)
  assert result.aggregation is None and any("only the baselines" in n for n in result.notes)
  assert set(result.families) == {"llama", "composer"}
  for family in ("llama", "composer"):
    points = result.points[family]
    assert len(points) == 6 and all(math.isfinite(p.loss) and p.loss > 0 for p in points)
  step = 8 * 16  # batch_size x seq_len
  with ResultStore(files.store, read_only=True) as store:
    for run in store.training_runs():  # compute-exact: each run spends its budget to within half a step
      assert run.details["flops_method"] == "xla" and run.tokens % step == 0
      assert run.details["realised_flops"] == run.tokens * run.details["flops_per_token"]
      assert abs(run.details["realised_flops"] - run.budget_flops) <= step / 2 * run.details["flops_per_token"]
  assert set(result.fits) == {"llama", "composer"}
  assert [c.family for c in result.comparisons] == ["composer"] and result.comparisons[0].baseline == "llama"


def test_six_n_convention_and_a_changed_convention_on_resume(tmp_path, corpus):
  config, files = api.open_run(_config(tmp_path, corpus, baselines=("llama",), flops="6n", budgets=(2e7, 3e7, 4e7)))
  result = api.scale(config, files)
  assert all(p.tokens == 8 * 16 * round(p.budget_flops / (6 * p.params * 8 * 16)) for p in result.points["llama"])
  changed = dataclasses.replace(config, scale=dataclasses.replace(config.scale, flops="xla"))
  with pytest.raises(ConfigError, match="counted FLOPs as 6n"):
    api.scale(changed, files)


def test_resumed_scale_trains_nothing_twice(tmp_path, corpus, monkeypatch):
  config, files = api.open_run(_config(tmp_path, corpus, baselines=("llama",)))
  first = api.scale(config, files)

  def refuse(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(_PointTrainer, "train", refuse)
  second = api.scale(config, files)
  assert second.points == first.points


def test_a_family_whose_layout_changed_is_trained_again(tmp_path, corpus):
  config, files = api.open_run(_config(tmp_path, corpus, baselines=("llama",), budgets=(2e7, 3e7, 4e7)))
  with ResultStore(files.store) as store:  # runs of an older "llama" layout, one with the same size
    store.add_training_run("llama", "MMMMMM", budget_flops=2e7, params=4_608, loss=9.0, tokens=128,
                           details={"flops_method": "xla"})
    store.add_training_run("llama", "MMMMMM", budget_flops=2e7, params=1, loss=9.0, tokens=128,
                           details={"flops_method": "xla"})
  result = api.scale(config, files)
  assert all(p.loss < 9.0 for p in result.points["llama"]) and len(result.points["llama"]) == 9
  assert any("2 finished run(s) of its earlier layout were dropped" in n for n in result.notes)
  with ResultStore(files.store, read_only=True) as store:
    assert {row.layout for row in store.training_runs()} == {"AMAMAM"}


def test_seed_adjusted_means_put_raced_layouts_on_the_search_seeds_scale():
  # Seed 1 is harder for every layout (+0.10 for a, +0.06 for b: effect +0.08); c was not raced.
  scores = {"a": {0: 3.40, 1: 3.50}, "b": {0: 3.45, 1: 3.51}, "c": {0: 3.42}, "d": {1: 3.30}}
  adjusted = seed_adjusted_means(scores, 0)
  assert set(adjusted) == {"a", "b", "c"}  # d was never scored with the search's seed
  assert adjusted["a"] == pytest.approx((3.40 + 3.50 - 0.08) / 2)
  assert adjusted["b"] == pytest.approx((3.45 + 3.51 - 0.08) / 2)
  assert adjusted["c"] == 3.42
  assert adjusted["a"] < adjusted["c"] < adjusted["b"]  # plain means would rank c first (3.42 < 3.45 < 3.48)


def test_pool_results_averages_the_seeds_of_searched_layouts(tmp_path):
  run = tmp_path / "run"
  with ResultStore(run / "results.sqlite") as store:
    store.add_evaluation("AMAM", task="mad-lite", metric=0.5, seed=0)
    store.add_evaluation("AMAM", task="mad-lite", metric=0.9, seed=1)  # a race repeat
    store.add_evaluation("AAMM", task="mad-lite", metric=None, seed=0, is_buggy=True)
    store.add_evaluation("MMAA", task="other", metric=0.7, seed=0)
    store.add_evaluation("MAMA", task="mad-lite", metric=0.8, seed=3)  # never scored by the search itself
    store.add_evaluation("AMMA", task="mad-lite", metric=0.6, seed=0)
  # Seed 1's effect, from the one layout scored with seeds 0 and 1, is +0.4: AMAM's adjusted mean is 0.5.
  assert pool_results([run], "mad-lite", 0) == [("AMAM", pytest.approx(0.5)), ("AMMA", 0.6)]
  with pytest.raises(ConfigError, match="no results.sqlite"):
    pool_results([tmp_path / "missing"], "mad-lite", 0)


def test_width_config_heads_and_ffn():
  base = preset_config("proxy")
  config = width_config(base, 48, vocab_size=257, seq_len=64, head_dim=16, ffn_ratio=3.0)
  assert (config.d_model, config.num_heads, config.resolved_head_dim, config.ffn_dim) == (48, 3, 16, 144)
  assert config.vocab_size == 257 and config.ssm_inner % config.ssm_head_dim == 0
  narrow = width_config(base, 8, vocab_size=257, seq_len=64, head_dim=16)
  assert (narrow.num_heads, narrow.resolved_head_dim) == (1, 8)
  assert width_config(base, 40, vocab_size=257, seq_len=64, head_dim=16).resolved_head_dim == 20  # 2 heads
  with pytest.raises(ConfigError, match="head_dim"):
    width_config(base, 18, vocab_size=257, seq_len=64, head_dim=4)  # 4 heads do not divide 18


def test_missing_corpus_is_a_config_error(tmp_path, corpus):
  config = _config(tmp_path, corpus)
  config = dataclasses.replace(config, scale=dataclasses.replace(config.scale, task_options={
      "path": str(tmp_path / "nowhere.txt")}))
  with pytest.raises(ConfigError, match="scale.task"):
    api.check_scale_task(config)


def test_a_target_depth_too_small_for_a_baseline_is_a_config_error(tmp_path, corpus):
  config, files = api.open_run(_config(tmp_path, corpus, target_depth=4))  # composer has 6 runs
  with pytest.raises(ConfigError, match="cannot stretch"):
    api.scale(config, files)


def test_one_device_switch_and_eight_device_sharded_runs_give_the_same_losses(tmp_path, corpus):
  """One isoFLOP point with the switch program on one device and with the family's own model sharded over the
  8 fake devices: the same loop, optimizer, initial parameters and batches, so the study's losses agree up to
  floating-point order (a 0.5-nat gap was tolerated when the two used different trainers)."""
  losses, seen = {}, {}
  for trainer in ("sharded", "switch"):
    config = _config(tmp_path, corpus, trainer=trainer)
    task = scale_task(config)
    base = preset_config("proxy", **config.evaluator.model)
    model_config = width_config(base, 16, task.spec.vocab_size, config.scale.seq_len, head_dim=4)
    point = _PointTrainer(config, task, "AM")
    assert point.trainer == trainer
    scores = point.train(Layout.parse("AMAMAM"), model_config, tokens=8 * 16 * 60, seed=0)
    losses[trainer] = scores["loss"], scores["train_loss"]
    seen[trainer] = point.mesh.devices.size
  assert seen == {"sharded": 8, "switch": 1}
  assert all(math.isfinite(v) and v < math.log(257) - 1.0 for v, _ in losses.values()), losses
  np.testing.assert_allclose(losses["sharded"], losses["switch"], rtol=2e-4)


def test_a_point_that_cannot_fit_is_a_failed_run_with_the_reason(tmp_path, corpus, monkeypatch):
  """The preflight refuses a point whose step needs more memory than the device has (1 KiB here) before any
  step; the stage stores it as a failed run and its notes say why (a resumed stage does not retry it)."""
  monkeypatch.setattr("aira_jax.train.trainer.device_memory_bytes", lambda device: 1024)
  config, files = api.open_run(_config(tmp_path, corpus, baselines=("llama",), widths=(8, 12, 16), budgets=(2e7,)))
  result = api.scale(config, files)
  assert result.points == {} and "llama" not in result.fits
  assert any("does not fit: needs" in note and "of 1.0 KiB per device" in note for note in result.notes), result.notes
  with ResultStore(files.store, read_only=True) as store:
    runs = store.training_runs()
  assert len(runs) == 3 and {run.status for run in runs} == {"does not fit"} and all(r.loss is None for r in runs)
  assert all(run.details["steps"] == 0 for run in runs)
