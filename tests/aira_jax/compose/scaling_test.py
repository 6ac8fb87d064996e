"""Tests for the isoFLOP scaling method: run planning, per-budget parabola optima, frontier fits, comparisons."""

import math

import numpy as np
import pytest

from aira_jax.compose import scaling
from aira_jax.compose.scaling import IsoFlopPoint
from aira_jax.results.markdown import markdown_table


def synthetic_family(name, a, b, budgets, ratios=(0.3, 0.7, 2.2), curvature=0.05, noise=0.0, seed=0):
  """Points whose per-budget parabolas in ln N have vertices exactly on L* = a C^-b, at N* = 1e7 (C / 1e17)^0.5."""
  rng = np.random.default_rng(seed)
  points = []
  for budget in budgets:
    best_params = 1e7 * (budget / 1e17) ** 0.5
    for ratio in ratios:
      params = round(best_params * ratio)
      loss = a * budget**-b + curvature * math.log(params / best_params) ** 2 + rng.normal(0.0, noise)
      points.append(IsoFlopPoint(name, budget, params, scaling.tokens_for_budget(budget, params), loss))
  return points


BUDGETS = [1e17 * 3**i for i in range(5)]


def test_parabola_recovers_the_vertex_of_an_exact_quadratic():
  params = [1e6, 3e6, 2e7, 5e7, 1e8]
  center = math.log(1e7)
  losses = [0.3 * (math.log(n) - center) ** 2 + 2.5 for n in params]
  minimum = scaling.fit_isoflop_minimum(params, losses)
  assert minimum.interior and minimum.num_points == 5
  assert minimum.params_opt == pytest.approx(1e7, rel=1e-9)
  assert minimum.loss_opt == pytest.approx(2.5, rel=1e-12)
  assert minimum.coefficients == pytest.approx((0.3, -0.6 * center, 0.3 * center**2 + 2.5), rel=1e-9)


def test_parabola_with_small_noise_stays_close():
  params = np.geomspace(1e6, 1e8, 7)
  noise = np.random.default_rng(1).normal(0.0, 1e-3, size=7)
  losses = 0.1 * (np.log(params) - math.log(1e7)) ** 2 + 2.5 + noise
  minimum = scaling.fit_isoflop_minimum(params.tolist(), losses.tolist())
  assert minimum.interior
  assert minimum.params_opt == pytest.approx(1e7, rel=0.05)
  assert minimum.loss_opt == pytest.approx(2.5, abs=2e-3)


def test_concave_fit_falls_back_to_the_best_observed_point():
  params = [1e6, 1e7, 1e8]
  minimum = scaling.fit_isoflop_minimum(params, [3.0, 3.5, 2.9])  # bowed upwards: c2 < 0
  assert minimum.coefficients[0] < 0 and not minimum.interior
  assert (minimum.params_opt, minimum.loss_opt) == (1e8, 2.9)


def test_vertex_outside_the_sampled_range_is_not_extrapolated():
  params = [1e6, 1e7, 1e8]
  losses = [0.1 * (math.log(n) - math.log(1e10)) ** 2 + 2.0 for n in params]  # convex, vertex beyond 1e8
  minimum = scaling.fit_isoflop_minimum(params, losses)
  assert minimum.coefficients[0] > 0 and not minimum.interior
  assert (minimum.params_opt, minimum.loss_opt) == (1e8, losses[2])


def test_power_law_fit_is_exact_on_a_power_law():
  budgets = np.geomspace(1e18, 1e21, 6)
  law = scaling.fit_power_law(budgets.tolist(), (40.0 * budgets**-0.05).tolist())
  assert (law.a, law.b, law.r2) == pytest.approx((40.0, 0.05, 1.0), rel=1e-9)
  assert law.predict(1e20) == pytest.approx(40.0 * 1e20**-0.05, rel=1e-9)
  assert law.compute_for_loss(law.predict(3e19)) == pytest.approx(3e19, rel=1e-6)
  with pytest.raises(ValueError, match="does not improve"):
    scaling.PowerLaw(a=1.0, b=0.0, r2=1.0).compute_for_loss(2.0)


def test_frontier_recovered_from_parabolas_on_a_known_law():
  fit = scaling.fit_family(synthetic_family("f", 40.0, 0.05, BUDGETS), bootstrap=200)
  assert fit.frontier.a == pytest.approx(40.0, rel=1e-6)
  assert fit.frontier.b == pytest.approx(0.05, rel=1e-6)
  assert fit.non_interior_budgets == ()
  assert fit.samples.shape == (200, 2)
  low, high = fit.b_interval  # noise-free: residuals vanish and the interval collapses onto b
  assert low == pytest.approx(0.05, rel=1e-6) and high == pytest.approx(0.05, rel=1e-6)


def test_chinchilla_law_gives_the_analytic_compute_optimal_exponent():
  # L(N, D) = A N^-alpha + B D^-beta with D = C / (6 N): L*(C) is exactly proportional to
  # C^-(alpha beta / (alpha + beta)), and sizes at fixed ratios of N*(C) keep the parabola's error a constant
  # factor, so b is recovered exactly.
  big_a, big_b, alpha, beta = 400.0, 2000.0, 0.34, 0.28
  scale = (alpha * big_a / (beta * big_b)) ** (1 / (alpha + beta))
  points = []
  for budget in [1e17 * 4**i for i in range(5)]:
    best_params = scale * (budget / 6) ** (beta / (alpha + beta))
    for ratio in (0.25, 0.6, 1.7, 4.0):
      params, tokens = best_params * ratio, budget / (6 * best_params * ratio)
      points.append(IsoFlopPoint("chinchilla", budget, round(params), round(tokens),
                                 big_a * params**-alpha + big_b * tokens**-beta))
  fit = scaling.fit_family(points, bootstrap=0)
  assert fit.frontier.b == pytest.approx(alpha * beta / (alpha + beta), rel=1e-7)
  optima = [m.params_opt for m in fit.minima.values()]
  slope = np.polyfit(np.log(list(fit.minima)), np.log(optima), 1)[0]
  assert slope == pytest.approx(beta / (alpha + beta), rel=1e-6)
  assert math.isnan(fit.b_interval[0])  # bootstrap=0 reports no interval


def test_noisy_bootstrap_interval_covers_the_true_exponent():
  budgets = [1e17 * 3**i for i in range(6)]
  ratios = (0.3, 0.6, 1.0, 1.8, 3.5)
  covered = 0
  for seed in range(40):
    points = synthetic_family("n", 40.0, 0.05, budgets, ratios=ratios, curvature=0.02, noise=0.003, seed=seed)
    fit = scaling.fit_family(points, bootstrap=200, seed=seed)
    low, high = fit.b_interval
    assert low < high < low + 0.01
    covered += low <= 0.05 <= high
  assert covered >= 28  # nominal 90% of 40; the residual bootstrap with 6 budgets runs a little under that


def test_bootstrap_is_reproducible_by_seed():
  points = synthetic_family("n", 40.0, 0.05, BUDGETS, noise=0.003)
  first, again = (scaling.fit_family(points, bootstrap=50, seed=3) for _ in range(2))
  np.testing.assert_array_equal(first.samples, again.samples)
  assert not np.array_equal(first.samples, scaling.fit_family(points, bootstrap=50, seed=4).samples)


def test_compare_families_noise_free_matches_hand_computation():
  family = scaling.fit_family(synthetic_family("new", 45.0, 0.06, BUDGETS), bootstrap=200)
  baseline = scaling.fit_family(synthetic_family("llama", 40.0, 0.05, BUDGETS), bootstrap=200)
  result = scaling.compare_families(family, baseline, target_loss=2.5)
  assert result.speedup_percent == pytest.approx(20.0, rel=1e-5)
  assert result.speedup_interval == pytest.approx((20.0, 20.0), rel=1e-5)
  compute_new, compute_base = (45.0 / 2.5) ** (1 / 0.06), (40.0 / 2.5) ** (1 / 0.05)
  assert result.compute_family == pytest.approx(compute_new, rel=1e-4)
  assert result.compute_baseline == pytest.approx(compute_base, rel=1e-4)
  assert result.compute_ratio == pytest.approx(compute_new / compute_base, rel=1e-4)
  assert result.compute_ratio_interval == pytest.approx((compute_new / compute_base,) * 2, rel=1e-4)
  assert result.target_loss_source == "given"


def test_compare_families_default_target_and_noisy_intervals():
  family = scaling.fit_family(synthetic_family("new", 45.0, 0.06, BUDGETS, noise=0.002, seed=1), bootstrap=200)
  baseline = scaling.fit_family(synthetic_family("llama", 40.0, 0.05, BUDGETS, noise=0.002, seed=2), bootstrap=200)
  result = scaling.compare_families(family, baseline)
  assert result.target_loss == pytest.approx(baseline.frontier.predict(max(BUDGETS)))
  assert "largest budget" in result.target_loss_source
  assert result.compute_baseline == pytest.approx(max(BUDGETS), rel=1e-9)  # the baseline's own frontier point
  for value, (low, high) in [(result.speedup_percent, result.speedup_interval),
                             (result.compute_ratio, result.compute_ratio_interval)]:
    assert low < value < high
  assert result.speedup_interval[0] < 20.0 < result.speedup_interval[1]
  assert set(result.to_row()) >= {"speedup_percent", "compute_ratio_interval"}


def test_compare_families_needs_matching_bootstraps():
  family = scaling.fit_family(synthetic_family("new", 45.0, 0.06, BUDGETS), bootstrap=10)
  baseline = scaling.fit_family(synthetic_family("llama", 40.0, 0.05, BUDGETS), bootstrap=20)
  with pytest.raises(ValueError, match="bootstrap sizes differ"):
    scaling.compare_families(family, baseline)


def test_tokens_for_budget_counts():
  assert scaling.tokens_for_budget(6e9, 1000) == 1_000_000
  assert scaling.tokens_for_budget(100, 7) == 2  # 100 / 42 = 2.38
  with pytest.raises(ValueError, match="tokens"):
    scaling.tokens_for_budget(5, 1)
  with pytest.raises(ValueError, match="> 0"):
    scaling.tokens_for_budget(-1.0, 10)


def test_plan_isoflop_lists_runs_and_dropped_pairs():
  plan = scaling.plan_isoflop([6e6, 6e8], {"s": 1000, "m": 10_000, "l": 1_000_000}, min_tokens=100)
  assert [(r.budget_flops, r.name, r.tokens) for r in plan.runs] == [
      (6e6, "s", 1000), (6e6, "m", 100), (6e8, "s", 100_000), (6e8, "m", 10_000), (6e8, "l", 100)]
  assert [(r.budget_flops, r.params, r.tokens) for r in plan.dropped] == [(6e6, 1_000_000, 1)]
  unnamed = scaling.plan_isoflop([600], [1, 13, 200])  # 600 / 78 = 7.7 rounds to the nearest token
  assert [(r.params, r.tokens, r.name) for r in unnamed.runs] == [(1, 100, None), (13, 8, None)]
  assert [r.tokens for r in unnamed.dropped] == [0]


def test_plan_isoflop_spends_each_budget_at_each_size_own_cost():
  # Two sizes with very different FLOPs per token: each gets the tokens its own cost allows, rounded to whole
  # steps of 64 tokens, so the realised FLOPs stay within half a step of the budget.
  plan = scaling.plan_isoflop([1e9, 3e9], {"a": 1000, "b": 1000}, flops_per_token={"a": 6000.0, "b": 17_000.0},
                              tokens_per_step=64)
  for run in plan.runs:
    assert run.tokens % 64 == 0
    assert abs(run.realised_flops - run.budget_flops) <= 32 * run.flops_per_token
  by_name = {(r.budget_flops, r.name): r.tokens for r in plan.runs}
  assert by_name[(1e9, "a")] == 64 * round(1e9 / (6000 * 64))
  assert by_name[(1e9, "b")] == 64 * round(1e9 / (17_000 * 64))
  assert by_name[(1e9, "a")] > 2.5 * by_name[(1e9, "b")]
  with pytest.raises(ValueError, match="flops_per_token has 1 values"):
    scaling.plan_isoflop([1e9], [10, 20], flops_per_token=[5.0])


@pytest.mark.parametrize("call, message", [
    (lambda: scaling.fit_isoflop_minimum([], []), "non-empty"),
    (lambda: scaling.fit_isoflop_minimum([1e6, 1e6, 1e7], [3.0, 2.9, 2.8]), "3 distinct"),
    (lambda: scaling.fit_isoflop_minimum([1e6, 1e7, 1e8], [3.0, float("nan"), 2.8]), "finite"),
    (lambda: scaling.fit_isoflop_minimum([1e6, 1e7, 1e8], [3.0, 2.9]), "losses has 2"),
    (lambda: scaling.fit_power_law([1e18, 1e18], [3.0, 2.9]), "2 distinct budgets"),
    (lambda: scaling.fit_power_law([1e18, 1e19], [3.0, -2.9]), "> 0"),
    (lambda: scaling.fit_family([]), "at least one"),
    (lambda: scaling.fit_family(synthetic_family("x", 40, 0.05, BUDGETS) + synthetic_family("y", 40, 0.05, BUDGETS)),
     "mix families"),
    (lambda: scaling.fit_family(synthetic_family("x", 40, 0.05, BUDGETS), confidence=1.0), "confidence"),
    (lambda: scaling.fit_family(synthetic_family("x", 40, 0.05, BUDGETS, ratios=(0.5, 2.0))), "budget 1e\\+17"),
    (lambda: scaling.plan_isoflop([1e18], [0]), "sizes"),
    (lambda: scaling.plan_isoflop([1e18], [10], min_tokens=0), "min_tokens"),
    (lambda: IsoFlopPoint("", 1e18, 10, 10, 2.0), "family"),
    (lambda: IsoFlopPoint("x", 1e18, 10, 10, float("inf")), "finite"),
])
def test_invalid_input_is_refused(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_rows_render_as_markdown():
  fit = scaling.fit_family(synthetic_family("f", 40.0, 0.05, BUDGETS), bootstrap=0)
  table = markdown_table(fit.to_rows())
  lines = table.splitlines()
  assert lines[0] == "| family | budget_flops | params_opt | loss_opt | interior | num_points |"
  assert len(lines) == 2 + len(BUDGETS) and lines[2].startswith("| f | 1e+17 | 1e+07 |")


def test_frontier_interval_is_the_t_interval_of_the_slope():
  # Three noisy budgets: the draws' exponent interval matches the textbook t interval of a least-squares slope
  # (1 degree of freedom, quantile 6.31 at 90%), computed here by scipy.
  from scipy import stats
  points = synthetic_family("f", 40.0, 0.05, BUDGETS[:3], noise=0.01, seed=5)
  fit = scaling.fit_family(points, bootstrap=20000, seed=0)
  budgets = np.array(sorted(fit.minima))
  line = stats.linregress(np.log(budgets), np.log([fit.minima[c].loss_opt for c in budgets]))
  half = stats.t.ppf(0.95, 1) * line.stderr
  assert fit.frontier.b == pytest.approx(-line.slope)
  assert fit.b_interval == pytest.approx((-line.slope - half, -line.slope + half), rel=0.05, abs=2e-3)
  # Two budgets leave nothing to estimate the scatter from: no interval, not a zero-width one.
  two = scaling.fit_family(synthetic_family("f", 40.0, 0.05, BUDGETS[:2], noise=0.01), bootstrap=100)
  assert all(math.isnan(v) for v in two.b_interval)
