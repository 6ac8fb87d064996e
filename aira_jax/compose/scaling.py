"""IsoFLOP scaling study (Chinchilla approach 2): plan the runs, fit each budget's optimum, fit and compare frontiers.

Definitions used throughout (the paper's exact fit is not public; these are this project's):
  tokens      D = C / F for compute budget C (FLOPs) and F training FLOPs per token (compose/flops.py: XLA's
              count of the model's forward + backward by default, or 6 N for N parameters), rounded to whole
              optimizer steps.
  optimum     per budget, a least-squares parabola loss = c2 x^2 + c1 x + c0 in x = ln N; the vertex gives
              N* = exp(-c1 / (2 c2)) and L* = the parabola there. If c2 <= 0 (no minimum) or the vertex lies
              outside [min N, max N] sampled, the fit is marked `interior=False` and N*, L* are the best
              *observed* point instead: never extrapolated, and flagged so a report can say the grid missed it.
  frontier    L*(C) = a C^(-b), least squares on ln L* = ln a - b ln C over the per-budget optima
              (non-interior optima included at their observed value). Larger b = faster gain from compute.
  samples     draws of (ln a, b) from the sampling distribution of the least-squares line with n - 2
              degrees of freedom (n budgets): est + L z sqrt((n - 2) / chi2_{n-2}), L L^T = s^2 (X^T X)^-1,
              s^2 = residual sum of squares / (n - 2), z standard normal: a bivariate Student t, whose
              marginal intervals are the textbook t intervals of the slope and intercept. The scatter of
              the optima about the line carries the noise of every run (and of each parabola's vertex).
              Why not a residual bootstrap (used before): with n = 3 budgets it resamples 3 residuals and gave
              exponent intervals far narrower than the scatter of the points (RESULTS.md, issue 19,
              "Compute-exact budgets, racing, verdicts"); the t draws are honest at small n (with 1 degree
              of freedom the 90% t quantile is 6.3, not 1.6). With 2 budgets nothing is left to estimate
              the scatter: every draw is NaN and the intervals say so.
  intervals   percentile intervals (no interpolation) over the samples, `confidence` two-sided.
  X% faster   100 * (b_family / b_baseline - 1); its interval pairs the i-th sample of each family.
  compute     C(L) = (a / L)^(1 / b) to reach loss L; "needs Y x the compute" is Y = C_family(L) / C_baseline(L).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np


def _positive_array(values, name: str) -> np.ndarray:
  array = np.asarray(values, dtype=np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"{name}: need a non-empty 1-D sequence, got shape {array.shape}")
  if not np.all(np.isfinite(array)) or np.any(array <= 0):
    raise ValueError(f"{name}: every value must be finite and > 0, got {array.tolist()}")
  return array


def _check_confidence(confidence: float) -> None:
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
  """Two-sided percentile interval over the non-NaN samples; (nan, nan) when there are none."""
  kept = samples[~np.isnan(samples)]
  if kept.size == 0:
    return (math.nan, math.nan)
  tail = (1.0 - confidence) / 2.0
  low, high = np.quantile(kept, [tail, 1.0 - tail], method="inverted_cdf")
  return (float(low), float(high))


@dataclasses.dataclass(frozen=True)
class IsoFlopPoint:
  """One finished training run of an isoFLOP study."""

  family: str
  budget_flops: float
  params: int
  tokens: int
  loss: float

  def __post_init__(self):
    if not self.family:
      raise ValueError("IsoFlopPoint.family must be a non-empty name")
    _positive_array([self.budget_flops, self.params, self.tokens, self.loss], "IsoFlopPoint budget/params/tokens/loss")


def tokens_for_budget(budget_flops: float, params: int) -> int:
  """D = floor(C / (6 N)); ValueError unless C, N > 0 and the result is at least one token."""
  _positive_array([budget_flops, params], "budget_flops and params")
  tokens = math.floor(budget_flops / (6.0 * params))
  if tokens < 1:
    raise ValueError(f"budget {budget_flops:g} FLOPs buys {budget_flops / (6.0 * params):.3g} tokens "
                     f"for {params} params")
  return tokens


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """One (budget, size) run: `tokens` = whole steps of `tokens_per_step` closest to C / `flops_per_token`."""

  budget_flops: float
  params: int
  tokens: int
  name: str | None = None
  flops_per_token: float = 0.0

  @property
  def realised_flops(self) -> float:
    """The training FLOPs this run really spends: tokens x FLOPs per token."""
    return self.tokens * self.flops_per_token


@dataclasses.dataclass(frozen=True)
class IsoFlopPlan:
  """`runs` to train, and `dropped`: pairs whose token count fell below `min_tokens`."""

  runs: tuple[PlannedRun, ...]
  dropped: tuple[PlannedRun, ...]


def plan_isoflop(budgets: Sequence[float], sizes: Mapping[str, int] | Sequence[int], *,
                 flops_per_token: Mapping[str, float] | Sequence[float] | None = None, min_tokens: int = 1,
                 tokens_per_step: int = 1) -> IsoFlopPlan:
  """Every (budget, size) pair, budgets then sizes in the order given.

  `sizes` is either {name: params} or a list of params; `flops_per_token` (aligned with `sizes`, same form)
  is each size's training FLOPs per token, default 6 N. Tokens: D = C / F rounded to the nearest whole number
  of steps of `tokens_per_step` tokens, so a run's realised FLOPs D x F differ from C by at most half a step. Pairs with fewer than `min_tokens` tokens (for example fewer than a
  minimum number of steps) are not trained; they are returned in `dropped` so a report can list them.
  """
  if min_tokens < 1 or tokens_per_step < 1:
    raise ValueError(f"min_tokens and tokens_per_step must be >= 1, got {min_tokens}, {tokens_per_step}")
  named = list(sizes.items()) if isinstance(sizes, Mapping) else [(None, size) for size in sizes]
  _positive_array(budgets, "budgets")
  _positive_array([size for _, size in named], "sizes")
  if flops_per_token is None:
    costs = [6.0 * size for _, size in named]
  else:
    costs = [flops_per_token[name] for name, _ in named] if isinstance(flops_per_token, Mapping) \
        else list(flops_per_token)
    if len(costs) != len(named):
      raise ValueError(f"flops_per_token has {len(costs)} values for {len(named)} sizes")
    _positive_array(costs, "flops_per_token")
  runs, dropped = [], []
  for budget in budgets:
    for (name, params), cost in zip(named, costs):
      steps = round(budget / (cost * tokens_per_step))
      run = PlannedRun(float(budget), int(params), int(steps * tokens_per_step), name, float(cost))
      (runs if run.tokens >= min_tokens else dropped).append(run)
  return IsoFlopPlan(tuple(runs), tuple(dropped))


@dataclasses.dataclass(frozen=True)
class IsoFlopMinimum:
  """The optimum of one budget. `coefficients` = (c2, c1, c0) of loss = c2 x^2 + c1 x + c0, x = ln N."""

  params_opt: float
  loss_opt: float
  coefficients: tuple[float, float, float]
  interior: bool
  num_points: int


def fit_isoflop_minimum(params: Sequence[int], losses: Sequence[float]) -> IsoFlopMinimum:
  """Least-squares parabola of loss in ln N and its vertex; see the module docstring for the non-interior rule."""
  sizes, loss = _positive_array(params, "params"), _positive_array(losses, "losses")
  if sizes.size != loss.size:
    raise ValueError(f"params has {sizes.size} values but losses has {loss.size}")
  if np.unique(sizes).size < 3:
    raise ValueError(f"a parabola needs >= 3 distinct sizes, got {sorted(set(sizes.tolist()))}")
  x = np.log(sizes)
  center = float(x.mean())  # fit in u = x - center for conditioning, then expand back to x
  d2, d1, d0 = np.polyfit(x - center, loss, 2)
  coefficients = (float(d2), float(d1 - 2 * d2 * center), float(d2 * center**2 - d1 * center + d0))
  if d2 > 0:
    vertex = center - d1 / (2 * d2)
    if x.min() <= vertex <= x.max():
      return IsoFlopMinimum(float(math.exp(vertex)), float(d0 - d1**2 / (4 * d2)), coefficients, True, int(sizes.size))
  best = int(np.argmin(loss))
  return IsoFlopMinimum(float(sizes[best]), float(loss[best]), coefficients, False, int(sizes.size))


def _fit_lines(log_budgets: np.ndarray, log_losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares ln L = ln a - b ln C for each row of `log_losses`; returns (ln a, b) per row."""
  centered = log_budgets - log_budgets.mean()
  slope = (log_losses - log_losses.mean(axis=-1, keepdims=True)) @ centered / (centered @ centered)
  return log_losses.mean(axis=-1) - slope * log_budgets.mean(), -slope


@dataclasses.dataclass(frozen=True)
class PowerLaw:
  """L(C) = a C^(-b); `r2` is the coefficient of determination of the fit in log-log space."""

  a: float
  b: float
  r2: float

  def predict(self, budget_flops: float) -> float:
    return self.a * float(_positive_array([budget_flops], "budget_flops")[0]) ** (-self.b)

  def compute_for_loss(self, loss: float) -> float:
    """C = (a / L)^(1 / b), the compute at which the frontier reaches `loss` (inf beyond float range)."""
    target = float(_positive_array([loss], "loss")[0])
    if self.b <= 0:
      raise ValueError(f"the frontier does not improve with compute (b = {self.b:.4g}); no budget reaches {loss}")
    return float(_compute_for_loss(np.log(self.a), self.b, target))


def _compute_for_loss(log_a, b, loss):
  """Vectorised (a / L)^(1 / b); inf where b <= 0 (never reached) or beyond float range."""
  log_a, b = np.asarray(log_a, dtype=np.float64), np.asarray(b, dtype=np.float64)
  with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
    return np.where(b > 0, np.exp((log_a - math.log(loss)) / np.where(b > 0, b, 1.0)), np.inf)


def fit_power_law(budgets: Sequence[float], losses: Sequence[float]) -> PowerLaw:
  """Fit L = a C^(-b) as a least-squares line in log-log space; needs >= 2 distinct budgets."""
  log_budgets = np.log(_positive_array(budgets, "budgets"))
  log_losses = np.log(_positive_array(losses, "losses"))
  if log_budgets.size != log_losses.size:
    raise ValueError(f"budgets has {log_budgets.size} values but losses has {log_losses.size}")
  if np.unique(log_budgets).size < 2:
    raise ValueError("a power law needs >= 2 distinct budgets")
  log_a, b = _fit_lines(log_budgets, log_losses)
  residual = log_losses - (log_a - b * log_budgets)
  total = float(np.sum((log_losses - log_losses.mean()) ** 2))
  r2 = 1.0 if total == 0 else 1.0 - float(residual @ residual) / total
  return PowerLaw(float(np.exp(log_a)), float(b), r2)


def _frontier_samples(log_budgets: np.ndarray, log_losses: np.ndarray, frontier: PowerLaw, count: int,
                      seed: int) -> np.ndarray:
  """`count` (a, b) draws from the least-squares line's bivariate t sampling distribution (module docstring);
  NaN rows when fewer than 3 budgets leave no degrees of freedom."""
  n = log_budgets.size
  if n < 3:
    return np.full((count, 2), np.nan)
  design = np.stack([np.ones(n), -log_budgets], axis=-1)  # ln L = ln a + b (-ln C)
  estimate = np.array([math.log(frontier.a), frontier.b])
  residuals = log_losses - design @ estimate
  scale = float(residuals @ residuals) / (n - 2)
  cholesky = np.linalg.cholesky(scale * np.linalg.inv(design.T @ design))
  rng = np.random.default_rng(seed)
  normal = rng.standard_normal((count, 2))
  stretch = np.sqrt((n - 2) / rng.chisquare(n - 2, size=(count, 1)))
  draws = estimate + (normal @ cholesky.T) * stretch
  with np.errstate(over="ignore"):  # the t tails can put ln a beyond float range: a = inf, dropped later
    return np.stack([np.exp(draws[:, 0]), draws[:, 1]], axis=-1)


@dataclasses.dataclass(frozen=True)
class FamilyFit:
  """A family's per-budget optima, its frontier, and bootstrap intervals; `samples` holds (a, b) rows."""

  family: str
  minima: dict[float, IsoFlopMinimum]
  frontier: PowerLaw
  b_interval: tuple[float, float]
  a_interval: tuple[float, float]
  samples: np.ndarray
  confidence: float

  @property
  def non_interior_budgets(self) -> tuple[float, ...]:
    return tuple(budget for budget, minimum in self.minima.items() if not minimum.interior)

  def to_rows(self) -> list[dict]:
    """One row per budget, for a markdown table."""
    return [dict(family=self.family, budget_flops=budget, params_opt=m.params_opt, loss_opt=m.loss_opt,
                 interior=m.interior, num_points=m.num_points) for budget, m in self.minima.items()]


def fit_family(points: Sequence[IsoFlopPoint], *, bootstrap: int = 1000, seed: int = 0,
               confidence: float = 0.9) -> FamilyFit:
  """Fit one family's isoFLOP study: a parabola per budget, the frontier through the optima, bootstrap intervals.

  `bootstrap` = number of (a, b) draws for the intervals (module docstring, "samples"); 0 disables them
  (intervals are NaN, `samples` is empty).
  """
  _check_confidence(confidence)
  if not points:
    raise ValueError("fit_family needs at least one IsoFlopPoint")
  families = sorted({point.family for point in points})
  if len(families) != 1:
    raise ValueError(f"points mix families {families}; fit each family separately")
  if bootstrap < 0:
    raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
  by_budget: dict[float, list[IsoFlopPoint]] = {}
  for point in points:
    by_budget.setdefault(float(point.budget_flops), []).append(point)
  minima = {}
  for budget in sorted(by_budget):
    try:
      minima[budget] = fit_isoflop_minimum([p.params for p in by_budget[budget]], [p.loss for p in by_budget[budget]])
    except ValueError as error:
      raise ValueError(f"budget {budget:g}: {error}") from error
  frontier = fit_power_law(list(minima), [m.loss_opt for m in minima.values()])
  samples = _frontier_samples(np.log(np.array(list(minima))), np.log([m.loss_opt for m in minima.values()]),
                              frontier, bootstrap, seed)
  return FamilyFit(families[0], minima, frontier, _interval(samples[:, 1], confidence),
                   _interval(samples[:, 0], confidence), samples, confidence)


@dataclasses.dataclass(frozen=True)
class Comparison:
  """`family` against `baseline`; see `compare_families` for the definitions. Intervals are percentile."""

  family: str
  baseline: str
  speedup_percent: float
  speedup_interval: tuple[float, float]
  target_loss: float
  target_loss_source: str
  compute_family: float
  compute_family_interval: tuple[float, float]
  compute_baseline: float
  compute_baseline_interval: tuple[float, float]
  compute_ratio: float
  compute_ratio_interval: tuple[float, float]
  confidence: float

  def to_row(self) -> dict:
    return dataclasses.asdict(self)

  @property
  def verdict(self) -> str:
    """"wins" / "loses" when the compute-ratio interval lies below / above 1, "tie" when it holds 1,
    "undetermined" when there is no interval (fewer than 3 budgets, or no samples)."""
    low, high = self.compute_ratio_interval
    if math.isnan(low) or math.isnan(high):
      return "undetermined"
    return "wins" if high < 1 else "loses" if low > 1 else "tie"

  def sentence(self) -> str:
    """The comparison in words, e.g. for the top of a report."""
    low, high = self.compute_ratio_interval
    share = f"{round(100 * self.confidence)}%"
    cost = (f"it needs {self.compute_ratio:.2f}x the compute of {self.baseline} to reach loss "
            f"{self.target_loss:.4f}")
    exponent = f"its frontier exponent differs by {self.speedup_percent:+.1f}%"
    if self.verdict == "undetermined":
      return (f"{self.family} vs {self.baseline}: **undetermined** (no interval: the frontier fits have fewer "
              f"than 3 budgets); {cost}, {exponent}.")
    words = {"wins": "wins", "loses": "loses", "tie": "tie (the interval holds 1)"}[self.verdict]
    s_low, s_high = self.speedup_interval
    return (f"{self.family} vs {self.baseline}: **{words}** at this scale; {cost} ({share} interval "
            f"[{low:.2f}, {high:.2f}]), and {exponent} ([{s_low:+.1f}, {s_high:+.1f}]%).")


def compare_families(fit: FamilyFit, baseline_fit: FamilyFit, *, target_loss: float | None = None,
                     confidence: float = 0.9) -> Comparison:
  """Compare two frontiers.

  "Scales X% faster": X = 100 * (b_family / b_baseline - 1), the ratio of frontier exponents minus one; its
  interval takes the i-th bootstrap sample of each family together (the families were bootstrapped
  independently, so pairing by index is a draw from the joint distribution). Compute to reach `target_loss`:
  C = (a / L)^(1 / b) per family (inf in samples whose b <= 0), and `compute_ratio` = C_family / C_baseline,
  "needs Y x the compute of the baseline" (< 1 means cheaper). When `target_loss` is None the baseline's
  frontier loss at its largest measured budget is used, and `target_loss_source` says so.
  """
  _check_confidence(confidence)
  if baseline_fit.frontier.b <= 0:
    raise ValueError(f"baseline {baseline_fit.family!r} has b = {baseline_fit.frontier.b:.4g} <= 0; X% is undefined")
  if len(fit.samples) != len(baseline_fit.samples):
    raise ValueError(f"bootstrap sizes differ ({len(fit.samples)} vs {len(baseline_fit.samples)}); "
                     "refit both with the same count")
  if target_loss is None:
    largest = max(baseline_fit.minima)
    target_loss = baseline_fit.frontier.predict(largest)
    source = f"baseline {baseline_fit.family!r} frontier at its largest budget {largest:.3g} FLOPs"
  else:
    target_loss = float(_positive_array([target_loss], "target_loss")[0])
    source = "given"
  family_a, family_b = fit.samples[:, 0], fit.samples[:, 1]
  base_a, base_b = baseline_fit.samples[:, 0], baseline_fit.samples[:, 1]
  with np.errstate(divide="ignore", invalid="ignore"):
    speedups = np.where(base_b > 0, 100.0 * (family_b / base_b - 1.0), np.nan)
    family_compute = _compute_for_loss(np.log(family_a), family_b, target_loss)
    base_compute = _compute_for_loss(np.log(base_a), base_b, target_loss)
    ratios = family_compute / base_compute  # inf / inf -> NaN, dropped from the interval
  point_family = _compute_for_loss(math.log(fit.frontier.a), fit.frontier.b, target_loss)
  point_base = baseline_fit.frontier.compute_for_loss(target_loss)
  return Comparison(
      family=fit.family, baseline=baseline_fit.family,
      speedup_percent=100.0 * (fit.frontier.b / baseline_fit.frontier.b - 1.0),
      speedup_interval=_interval(speedups, confidence),
      target_loss=target_loss, target_loss_source=source,
      compute_family=float(point_family), compute_family_interval=_interval(family_compute, confidence),
      compute_baseline=point_base, compute_baseline_interval=_interval(base_compute, confidence),
      compute_ratio=float(point_family / point_base), compute_ratio_interval=_interval(ratios, confidence),
      confidence=confidence)
