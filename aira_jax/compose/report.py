"""The report of a compose run, `runs/<id>/report.md`, rebuilt from the run's files alone.

Everything comes from the journal and the store, so `python -m aira_jax.compose report RUN_DIR` rewrites it
at any time (also for an interrupted run): the verdict in words (each family against each baseline: wins,
loses or tie, with its interval), the leaderboard (raced layouts: mean over seeds, t interval, repeats, which
are tied with the best), search summary (per agent, failures, duplicates, evaluation cost, each agent's latest
analysis), noise floor, aggregation (members next to the aggregate) and extrapolation, the scaling study (runs
with the FLOPs they counted, per-budget optima, frontiers with t intervals, comparisons) and PNG plots next to it.
"""

from __future__ import annotations

import collections
import datetime
import pathlib
import statistics

import jax
import numpy as np

from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.session import distinct_best, fault_lines, latest_analysis_lines
from aira_jax.compose.aggregate import aggregate
from aira_jax.compose.analysis import failure_kind
from aira_jax.compose.config import ComposeConfig
from aira_jax.compose.families import scale_families
from aira_jax.compose.flops import DESCRIPTIONS as FLOPS_DESCRIPTIONS
from aira_jax.compose.racing import Standing, t_interval
from aira_jax.results.run_files import RunFiles
from aira_jax.compose.scale import fit_all, pool_results
from aira_jax.compose.scaling import Comparison, FamilyFit, IsoFlopPoint
from aira_jax.results.markdown import markdown_table
from aira_jax.layout import Layout
from aira_jax.results import plots
from aira_jax.results.store import ResultStore

SCALING_DEFINITIONS = (
    "Method (Chinchilla's approach 2, Hoffmann et al. 2022; definitions in aira_jax/compose/scaling.py): for each "
    "budget C every width is trained on D = C / F tokens, F = the model's training FLOPs per token ({flops}); a "
    "parabola in ln N gives the budget's optimum L* (marked not interior when the grid misses the vertex, then "
    "the best observed point); the frontier L*(C) = a C^-b is a least-squares line in log-log; its intervals are "
    "Student-t with n - 2 degrees of freedom (n budgets), so a frontier through 3 budgets has 1 degree of freedom "
    "and wide intervals, and one through 2 has none. \"Scales X% faster\" = 100 (b_family / b_baseline - 1). "
    "\"Compute ratio\" = the compute the family needs to reach the target loss divided by the baseline's "
    "((a / L)^(1/b) each; below 1 is cheaper).")


def _interval(low: float, high: float) -> str:
  return "-" if np.isnan(low) or np.isnan(high) else f"[{low:.3g}, {high:.3g}]"


def _leaderboard(best: list[Node], standings: list[Standing], scores: dict[str, list[float]],
                 confidence: float, search_seed: int) -> str:
  """Raced layouts first (best, tied, worse, failed), then the other best layouts by their single score. The
  "search seed" column is every row's score at the search's own seed, the one number all rows share: a mean
  over seeds carries each seed's effect, which common random numbers make the same for every layout, so
  means and single scores are not comparable across raced and unraced rows."""
  status = {s.layout: s for s in standings}
  layouts = [s.layout for s in standings] + [n.payload for n in best if n.payload not in status]
  nodes = {n.payload: n for n in best}
  share = f"{round(100 * confidence)}% CI"
  rows = []
  for rank, text in enumerate(layouts, start=1):
    layout, node, values = Layout.parse(text), nodes.get(text), scores.get(text, [])
    standing = status.get(text)
    first = standing.scores.get(search_seed) if standing else (node.metric if node else None)
    rows.append({"rank": rank, "layout": layout.run_length(), "ratio": layout.ratio_text(),
                 "search seed": "-" if first is None else f"{first:.4f}",
                 "mean": f"{statistics.fmean(values):.4f}" if values else "-",
                 share: _interval(*t_interval(values, confidence)), "repeats": len(values),
                 "race": ("tied with best" if standing.status == "tied" else standing.status) if standing else
                 "not raced", "agent": node.agent_id if node else "-", "node": node.id if node else "-"})
  return markdown_table(rows) or "No layout was scored."


def _race_summary(standings: list[Standing]) -> str:
  """One sentence: which raced layouts are statistically tied with the best."""
  if not standings:
    return ("The top layouts were not raced (search.race_top or search.race_repeats <= 1, or the search was "
            "interrupted): each score is one seed, and the ranking may be seed noise.")
  best = [s for s in standings if s.status == "best"]
  tied = [s for s in standings if s.status == "tied"]
  worse = [s for s in standings if s.status == "worse"]
  if not best:
    return "Every raced layout failed an evaluation."
  lead = best[0]
  text = (f"Raced: {len(standings)} layouts, up to {max(s.repeats for s in standings)} seeds each (common random "
          f"numbers, paired t intervals, Bonferroni-corrected; compose/racing.py). Best by mean: "
          f"{Layout.parse(lead.layout).run_length()} ({lead.mean:.4f} over {lead.repeats} seeds).")
  if tied:
    text += (f" Statistically tied with it: {', '.join(Layout.parse(s.layout).run_length() for s in tied)}; the "
             "proxy cannot order these at this budget.")
  else:
    text += " Every other contender was shown worse: the best is separated."
  if worse:
    text += f" Shown worse: {len(worse)}."
  return text + (" Compare rows that were not raced by the \"search seed\" column: a raced mean includes other "
                 "seeds, whose effect is shared by every layout, so it is not comparable with a single score.")


def _search_summary(journal: Journal, store: ResultStore, task: str) -> str:
  """Counts, tokens, failures, a table per agent and each agent's latest analysis. Analyses are nodes that are
  not steps: counted apart, never as scored or failed layouts."""
  nodes = journal.nodes
  steps = [n for n in nodes if not n.is_analysis]
  analyses = journal.analyses()
  evaluations = store.evaluations(task=task)
  written = (f", {len(analyses)} analyses ({sum(n.is_buggy for n in analyses)} failed)" if analyses else "")
  lines = [f"- nodes: {len(nodes)} ({sum(n.is_good for n in steps)} scored, {sum(n.is_buggy for n in steps)} "
           f"failed, {sum(n.is_good and 'evaluate' not in n.timings for n in steps)} answered as duplicates"
           f"{written})"]
  if evaluations:
    seconds = sum(row.seconds or 0.0 for row in evaluations)
    compiling = sum(row.compile_seconds or 0.0 for row in evaluations)
    rate = 3600 * len(evaluations) / seconds if seconds else float("nan")
    lines.append(f"- evaluations run: {len(evaluations)} in {seconds:.0f} s ({rate:.0f} per hour on this "
                 f"machine; {100 * compiling / max(seconds, 1e-9):.0f}% of it compiling)")
  tokens = sum(n.tokens for n in nodes)
  if tokens:
    lines.append(f"- LLM tokens: {tokens:,}")
  kinds = collections.Counter(failure_kind(n) for n in steps if n.is_buggy)
  if kinds:
    lines.append("- failures: " + ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common()))
  per_agent = []
  for agent in sorted({n.agent_id for n in nodes}):
    mine = journal.by_agent(agent)
    good = [n for n in mine if n.is_good]
    best = (min if journal.lower_is_better else max)(good, key=lambda n: n.metric, default=None)
    per_agent.append({"agent": agent, "steps": sum(not n.is_analysis for n in mine), "scored": len(good),
                      "failed": sum(n.is_buggy and not n.is_analysis for n in mine),
                      "operators": ", ".join(f"{k} {v}" for k, v in collections.Counter(n.operator for n in mine)
                                             .items()),
                      "best": f"{best.metric:.4f} {Layout.parse(best.payload).run_length()}" if best else "-"})
  out = "\n".join(lines) + "\n\n" + markdown_table(per_agent)
  latest = latest_analysis_lines(journal)
  if latest:
    out += "\n\n" + "\n".join(latest)
  return out


def _noise_section(noise: dict[str, list[float]]) -> str:
  if not noise:
    return "Not measured (no layout was evaluated with two or more seeds)."
  rows = [{"layout": Layout.parse(k).run_length(), "seeds": len(v), "mean": f"{statistics.fmean(v):.4f}",
           "std": f"{statistics.stdev(v):.4f}", "range": f"{min(v):.4f}..{max(v):.4f}"} for k, v in noise.items()]
  pooled = statistics.fmean(statistics.variance(v) for v in noise.values()) ** 0.5
  return (markdown_table(rows) + f"\n\nPooled standard deviation over seeds: **{pooled:.4f}**. Single-seed scores "
          f"that differ by less than about {2 * pooled:.4f} (2 sigma) are not distinguishable by this evaluator; "
          "paired repeats (the race) separate smaller differences, because layouts share each seed's noise.")


def _edge_caution(comparison: Comparison, fits: dict[str, FamilyFit]) -> str:
  """A clause when either frontier runs through optima at the edge of the width grid (upper bounds)."""
  counts = {name: (len(fits[name].non_interior_budgets), len(fits[name].minima))
            for name in (comparison.family, comparison.baseline)}
  if not any(edge for edge, _ in counts.values()):
    return ""
  parts = " and ".join(f"{edge} of {total} for {name}" for name, (edge, total) in counts.items())
  return (f" Caution: budget optima at the edge of the width grid ({parts}) are upper bounds, not optima; a wider "
          "grid can change this verdict.")


def _verdict(comparisons: list[Comparison], fits: dict[str, FamilyFit], flops: str) -> list[str]:
  """The report's opening: one sentence per comparison."""
  if not comparisons:
    return ["No verdict yet: the scaling study has not produced comparable frontier fits (see Scaling study).", ""]
  counts = {"wins": 0, "loses": 0, "tie": 0, "undetermined": 0}
  for comparison in comparisons:
    counts[comparison.verdict] += 1
  lines = [f"- {c.sentence()}{_edge_caution(c, fits)}" for c in comparisons]
  return ([f"At compute-exact budgets (FLOPs counted: {FLOPS_DESCRIPTIONS[flops]}), "
           f"{counts['wins']} comparison(s) won, {counts['loses']} lost, {counts['tie']} tied and "
           f"{counts['undetermined']} could not be decided. A win or loss needs the whole "
           f"{round(100 * comparisons[0].confidence)}% interval of the compute ratio on one side of 1; an "
           "interval that holds 1 is a tie at this scale, not evidence of equality.", ""] + lines +
          ["", f"Target loss: {comparisons[0].target_loss_source}.", ""])


def frontier_band(fit: FamilyFit, count: int = 48) -> tuple[list[float], list[float], list[float]] | None:
  """(budgets, lower, upper): the frontier's pointwise interval over the fit's samples, or None without one."""
  if fit.samples.size == 0 or np.isnan(fit.samples).all():
    return None
  grid = np.geomspace(min(fit.minima), max(fit.minima), count)
  with np.errstate(over="ignore", invalid="ignore"):
    curves = fit.samples[:, :1] * grid[None, :] ** -fit.samples[:, 1:2]
  tail = (1 - fit.confidence) / 2
  low, high = np.nanquantile(curves, [tail, 1 - tail], axis=0)
  return grid.tolist(), low.tolist(), high.tolist()


def _plots(files: RunFiles, journal: Journal, points: dict[str, list[IsoFlopPoint]], fits,
           flops: str) -> list[str]:
  made = []
  try:
    if journal.nodes:
      start = min(n.created_at for n in journal.nodes)
      series = collections.defaultdict(list)
      for node in journal.nodes:
        series[node.agent_id].append(((node.created_at - start) / 60, node.metric))
      plots.plot_best_so_far(series, files.root / "best_so_far.png", lower_is_better=journal.lower_is_better)
      made.append("![best so far](best_so_far.png)")
    if fits:
      frontiers = {f: plots.FrontierData(list(fit.minima), [m.loss_opt for m in fit.minima.values()],
                                         fit.frontier.a, fit.frontier.b, band=frontier_band(fit),
                                         interior=[m.interior for m in fit.minima.values()])
                   for f, fit in fits.items()}
      plots.plot_scaling(frontiers, files.root / "scaling_frontier.png",
                         xlabel=f"training FLOPs C (counted: {flops})", ylabel="validation loss (nats per token)")
      made.append("![scaling frontiers](scaling_frontier.png)")
    if points:
      curves = {f: [(p.budget_flops, p.params, p.loss) for p in ps] for f, ps in points.items()}
      parabolas = {f: {c: m.coefficients for c, m in fit.minima.items()} for f, fit in fits.items()}
      edge = {f: set(fit.non_interior_budgets) for f, fit in fits.items()}
      plots.plot_isoflop_curves(curves, files.root / "isoflop_curves.png", parabolas=parabolas, edge=edge)
      made.append("![isoFLOP curves](isoflop_curves.png)")
  except plots.PlotsUnavailable as e:
    made.append(f"Plots skipped: {e}")
  return made


def _scores_by_layout(store: ResultStore, task: str) -> dict[str, list[float]]:
  """Every finished score per layout, over all seeds."""
  scores: dict[str, list[float]] = {}
  for row in store.evaluations(task=task):
    if row.metric is not None and not row.is_buggy:
      scores.setdefault(row.key, []).append(row.metric)
  return scores


def _scaling_section(scale, runs, fits, comparisons, notes) -> list[str]:
  out = [SCALING_DEFINITIONS.format(flops=FLOPS_DESCRIPTIONS[scale.flops]), "", "### Runs", "", markdown_table([
      {"family": r.family, "C (FLOPs)": f"{r.budget_flops:.3g}", "width": r.details.get("width", "-"),
       "N": f"{r.params:,}", "D": f"{r.tokens or 0:,}",
       "FLOPs/token": f"{r.details['flops_per_token']:,.0f}" if "flops_per_token" in r.details else "-",
       "realised / C": f"{r.details['realised_flops'] / r.budget_flops:.3f}" if "realised_flops" in r.details
       else "-", "val loss": "-" if r.loss is None else f"{r.loss:.4f}", "status": r.status,
       "seconds": f"{r.seconds or 0:.1f}"} for r in runs]), ""]
  if fits:
    share = f"{round(100 * next(iter(fits.values())).confidence)}% CI"
    out += ["### Optima per budget", "", markdown_table([
        {"family": f, "C (FLOPs)": f"{c:.3g}", "N*": f"{m.params_opt:,.0f}", "L*": f"{m.loss_opt:.4f}",
         "interior": "yes" if m.interior else "no (grid edge or no vertex)", "sizes": m.num_points}
        for f, fit in fits.items() for c, m in fit.minima.items()]),
        "", "### Frontiers L*(C) = a C^-b", "", markdown_table([
            {"family": f, "a": f"{fit.frontier.a:.4g}", "b": f"{fit.frontier.b:.4f}",
             f"b {share} (t, n-2 df)": _interval(*fit.b_interval), "r2": f"{fit.frontier.r2:.3f}",
             "budgets": len(fit.minima)} for f, fit in fits.items()]), ""]
  edge = sum(not m.interior for fit in fits.values() for m in fit.minima.values())
  total = sum(len(fit.minima) for fit in fits.values())
  if edge:
    out += [f"**Caution:** {edge} of {total} budget optima lie at the edge of the width grid (not interior): the "
            "grid does not bracket the compute-optimal size there, so those points (and the frontiers through "
            "them) are upper bounds on L*, not optima. Widen `scale.widths` or raise `scale.budgets`.", ""]
  if any(len(fit.minima) < 3 for fit in fits.values()):
    out += ["**Caution:** a frontier through 2 budgets has no degrees of freedom left: it has no interval, and "
            "comparisons with it are undetermined. Give `scale.budgets` at least 3 (5 by default).", ""]
  if comparisons:
    out += ["### Comparisons", "", markdown_table([
        {"family": c.family, "baseline": c.baseline, "verdict": c.verdict,
         "compute ratio": f"{c.compute_ratio:.3g}", "ratio CI": _interval(*c.compute_ratio_interval),
         "scales faster": f"{c.speedup_percent:+.1f}%", "CI": _interval(*c.speedup_interval),
         "target loss": f"{c.target_loss:.4f}"} for c in comparisons]), ""]
  if notes:
    out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
  return out


def write_report(config: ComposeConfig, files: RunFiles) -> pathlib.Path:
  """Writes `report.md` (and the plots) for the run in `files.root`; returns the report's path."""
  search, scale = config.search, config.scale
  journal = Journal.load(files.journal)
  with ResultStore(files.store) as store:
    meta = store.get_meta("search", {}) or {}
    interrupted = store.get_meta("interrupted") or ("search" if meta.get("interrupted") else None)
    lower = bool(meta.get("lower_is_better", journal.lower_is_better))
    standings = [Standing.from_dict(row) for row in store.get_meta("race", []) or []]
    scores = _scores_by_layout(store, config.evaluator.task)
    noise = {k: v for k, v in scores.items() if len(v) >= 2}
    best = distinct_best(journal, 10)
    search_summary = _search_summary(journal, store, config.evaluator.task)
    runs = store.training_runs()
  agents = ", ".join(f"{a.name} ({a.policy}, {a.llm or 'heuristic'})" for a in search.agents)
  pooled = pool_results([files.root, *map(pathlib.Path, scale.from_runs)], config.evaluator.task,
                        config.evaluator.seed)
  aggregation = aggregate([p[0] for p in pooled], [p[1] for p in pooled], k=scale.kmeans_k, context=scale.context,
                          lower_is_better=lower, seed=config.seed) if pooled else None
  families = scale_families(aggregation.layout if aggregation else None, scale.methods, scale.baselines,
                            scale.target_depth)
  points: dict[str, list[IsoFlopPoint]] = {}
  for row in runs:
    if row.loss is not None:
      points.setdefault(row.family, []).append(IsoFlopPoint(row.family, row.budget_flops, row.params,
                                                            row.tokens or 1, row.loss))
  notes: list[str] = []
  fits, comparisons = fit_all(points, scale.baselines, scale.bootstrap, config.seed, scale.target_loss, notes)
  out = [f"# AIRA-Compose run {files.root.name}", "",
         f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}; jax {jax.__version__} on {jax.default_backend()} "
         f"({jax.device_count()} device(s)). Space {{{', '.join(search.space)}}}, depth {search.depth}; proxy "
         f"task {config.evaluator.task} ({meta.get('metric', 'metric')}, "
         f"{'lower' if lower else 'higher'} is better), evaluator mode {meta.get('mode', config.evaluator.mode)}, "
         f"evaluations on {meta.get('executor', 'this process')}; "
         f"agents: {agents}.", ""]
  out += fault_lines(meta, interrupted)
  out += ["## Verdict", ""] + _verdict(comparisons, fits, scale.flops)
  if "nemotron" not in scale.baselines:
    out += ["The Nemotron-like baseline (Mamba-2 mixers, a few attention layers) is not in `scale.baselines`; add "
            "it with `scale.baselines=[llama,composer,nemotron]` (its S layers widen the switch program).", ""]
  out += ["## Leaderboard", "", _race_summary(standings), "",
          _leaderboard(best, standings, scores, search.race_confidence, config.evaluator.seed), "",
          "## Search", "", search_summary, "", "## Noise floor", "", _noise_section(noise), "",
          "## Aggregation and extrapolation", ""]
  if aggregation is not None:
    out += [aggregation.describe(), "", markdown_table([
        {**row, "score": f"{row['score']:.4f}" if isinstance(row["score"], float) else row["score"]}
        for row in aggregation.member_rows()]), ""]
  out += [markdown_table([{"family": f, "layout": l.run_length(), "ratio": l.ratio_text()}
                          for f, l in families.items()]), "", "## Scaling study", ""]
  if not runs:
    out += ["Not run yet (`python -m aira_jax.compose scale --resume RUN_DIR`).", ""]
  else:
    out += _scaling_section(scale, runs, fits, comparisons, notes)
  out += ["## Plots", ""] + _plots(files, journal, points, fits, scale.flops) + [""]
  files.report.write_text("\n".join(out))
  return files.report
