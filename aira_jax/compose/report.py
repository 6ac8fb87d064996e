"""The report of a compose run, `runs/<id>/report.md`, rebuilt from the run's files alone.

Everything comes from the journal and the store, so `python -m aira_jax.compose report RUN_DIR` rewrites it
at any time (also for an interrupted run): leaderboard, search summary (per agent, failures, duplicates,
evaluation cost), noise floor, aggregation and extrapolation, the scaling study (runs, per-budget optima,
frontiers with bootstrap intervals, comparisons with the baseline) and PNG plots next to it.
"""

from __future__ import annotations

import collections
import datetime
import pathlib
import statistics

import jax

from aira_jax.agents.journal import Journal, Node
from aira_jax.agents.session import distinct_best
from aira_jax.compose.aggregate import aggregate
from aira_jax.compose.config import ComposeConfig
from aira_jax.compose.families import scale_families
from aira_jax.results.run_files import RunFiles
from aira_jax.compose.scale import fit_all, pool_results
from aira_jax.compose.scaling import IsoFlopPoint
from aira_jax.results.markdown import markdown_table
from aira_jax.layout import Layout
from aira_jax.results import plots
from aira_jax.results.store import ResultStore

SCALING_DEFINITIONS = (
    "Method (Chinchilla approach 2, REFERENCE.md section 5; definitions in aira_jax/compose/scaling.py): for each "
    "budget C every width is trained on D = C / (6N) tokens; a parabola in ln N gives the budget's optimum L* "
    "(marked not interior when the grid misses the vertex, then the best observed point); the frontier "
    "L*(C) = a C^-b is a least-squares line in log-log; intervals come from a residual bootstrap of that line. "
    "\"Scales X% faster\" = 100 (b_family / b_baseline - 1). \"Compute ratio\" = the compute the family needs to "
    "reach the target loss divided by the baseline's ((a / L)^(1/b) each; below 1 is cheaper).")


def _interval(low: float, high: float) -> str:
  return f"[{low:.3g}, {high:.3g}]"


def _leaderboard(best: list[Node], noise: dict[str, list[float]]) -> str:
  rows = []
  for rank, node in enumerate(best, start=1):
    layout = Layout.parse(node.payload)
    seeds = noise.get(node.payload, [])
    spread = f"{statistics.fmean(seeds):.4f} ± {statistics.stdev(seeds):.4f} ({len(seeds)} seeds)" \
        if len(seeds) >= 2 else "-"
    rows.append({"rank": rank, "layout": layout.run_length(), "ratio": layout.ratio_text(),
                 "fitness": f"{node.metric:.4f}", "over seeds": spread, "agent": node.agent_id,
                 "operator": node.operator, "node": node.id})
  return markdown_table(rows) or "No layout was scored."


def _failure_kind(node: Node) -> str:
  error = node.error or "unknown"
  return error.split(":", 1)[0][:60]


def _search_summary(journal: Journal, store: ResultStore, task: str) -> str:
  nodes = journal.nodes
  evaluations = store.evaluations(task=task)
  lines = [f"- nodes: {len(nodes)} ({sum(n.is_good for n in nodes)} scored, {sum(n.is_buggy for n in nodes)} "
           f"failed, {sum(n.is_good and 'evaluate' not in n.timings for n in nodes)} answered as duplicates)"]
  if evaluations:
    seconds = sum(row.seconds or 0.0 for row in evaluations)
    compiling = sum(row.compile_seconds or 0.0 for row in evaluations)
    rate = 3600 * len(evaluations) / seconds if seconds else float("nan")
    lines.append(f"- evaluations run: {len(evaluations)} in {seconds:.0f} s ({rate:.0f} per hour on this "
                 f"machine; {100 * compiling / max(seconds, 1e-9):.0f}% of it compiling)")
  tokens = sum(n.tokens for n in nodes)
  if tokens:
    lines.append(f"- LLM tokens: {tokens:,}")
  kinds = collections.Counter(_failure_kind(n) for n in nodes if n.is_buggy)
  if kinds:
    lines.append("- failures: " + ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common()))
  per_agent = []
  for agent in sorted({n.agent_id for n in nodes}):
    mine = journal.by_agent(agent)
    good = [n for n in mine if n.is_good]
    best = (min if journal.lower_is_better else max)(good, key=lambda n: n.metric, default=None)
    per_agent.append({"agent": agent, "steps": len(mine), "scored": len(good),
                      "failed": sum(n.is_buggy for n in mine),
                      "operators": ", ".join(f"{k} {v}" for k, v in collections.Counter(n.operator for n in mine)
                                             .items()),
                      "best": f"{best.metric:.4f} {Layout.parse(best.payload).run_length()}" if best else "-"})
  return "\n".join(lines) + "\n\n" + markdown_table(per_agent)


def _noise_section(noise: dict[str, list[float]], lower_is_better: bool) -> str:
  if not noise:
    return "Not measured (search.noise_seeds = 0, or the search was interrupted)."
  rows = [{"layout": Layout.parse(k).run_length(), "seeds": len(v), "mean": f"{statistics.fmean(v):.4f}",
           "std": f"{statistics.stdev(v):.4f}", "range": f"{min(v):.4f}..{max(v):.4f}"} for k, v in noise.items()]
  pooled = statistics.fmean(statistics.variance(v) for v in noise.values()) ** 0.5
  return (markdown_table(rows) + f"\n\nPooled standard deviation over seeds: **{pooled:.4f}**. Two layouts whose "
          f"fitness differs by less than about {2 * pooled:.4f} (2 sigma) are not distinguishable by this evaluator.")


def _plots(files: RunFiles, journal: Journal, points: dict[str, list[IsoFlopPoint]], fits) -> list[str]:
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
                                         fit.frontier.a, fit.frontier.b) for f, fit in fits.items()}
      plots.plot_scaling(frontiers, files.root / "scaling_frontier.png")
      made.append("![scaling frontiers](scaling_frontier.png)")
    if points:
      curves = {f: [(p.budget_flops, p.params, p.loss) for p in ps] for f, ps in points.items()}
      plots.plot_isoflop_curves(curves, files.root / "isoflop_curves.png")
      made.append("![isoFLOP curves](isoflop_curves.png)")
  except plots.PlotsUnavailable as e:
    made.append(f"Plots skipped: {e}")
  return made


def write_report(config: ComposeConfig, files: RunFiles) -> pathlib.Path:
  """Writes `report.md` (and the plots) for the run in `files.root`; returns the report's path."""
  search, scale = config.search, config.scale
  journal = Journal.load(files.journal)
  with ResultStore(files.store) as store:
    meta = store.get_meta("search", {}) or {}
    lower = bool(meta.get("lower_is_better", journal.lower_is_better))
    noise = {k: [r.metric for r in rows if r.metric is not None]
             for k, rows in store.evaluations_by_key(task=config.evaluator.task, min_count=2).items()}
    noise = {k: v for k, v in noise.items() if len(v) >= 2}
    best = distinct_best(journal, 10)
    agents = ", ".join(f"{a.name} ({a.policy}, {a.llm or 'heuristic'})" for a in search.agents)
    out = [f"# AIRA-Compose run {files.root.name}", "",
           f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}; jax {jax.__version__} on {jax.default_backend()} "
           f"({jax.device_count()} device(s)). Space {{{', '.join(search.space)}}}, depth {search.depth}; proxy "
           f"task {config.evaluator.task} ({meta.get('metric', 'metric')}, "
           f"{'lower' if lower else 'higher'} is better), evaluator mode {meta.get('mode', config.evaluator.mode)}; "
           f"agents: {agents}.", ""]
    if meta.get("interrupted"):
      out += ["**The search was interrupted**; resume it with `--resume`.", ""]
    out += ["## Leaderboard", "", _leaderboard(best, noise), "", "## Search", "",
            _search_summary(journal, store, config.evaluator.task), "", "## Noise floor", "",
            _noise_section(noise, lower), ""]
    pooled = pool_results([files.root, *map(pathlib.Path, scale.from_runs)], config.evaluator.task,
                          config.evaluator.seed)
    out += ["## Aggregation and extrapolation", ""]
    found = None
    if pooled:
      aggregation = aggregate([p[0] for p in pooled], [p[1] for p in pooled], k=scale.kmeans_k,
                              context=scale.context, lower_is_better=lower, seed=config.seed)
      found = aggregation.layout
      out += [aggregation.describe(), "", "Top cluster: " + ", ".join(
          f"{m.run_length()} ({s:.4f})" for m, s in zip(aggregation.members, aggregation.member_scores)), ""]
    families = scale_families(found, scale.methods, scale.baselines, scale.target_depth)
    out += [markdown_table([{"family": f, "layout": l.run_length(), "ratio": l.ratio_text()}
                            for f, l in families.items()]), ""]
    runs = store.training_runs()
  points: dict[str, list[IsoFlopPoint]] = {}
  for row in runs:
    if row.loss is not None:
      points.setdefault(row.family, []).append(IsoFlopPoint(row.family, row.budget_flops, row.params,
                                                            row.tokens or 1, row.loss))
  out += ["## Scaling study", ""]
  fits = {}
  if not runs:
    out += ["Not run yet (`python -m aira_jax.compose scale --resume RUN_DIR`).", ""]
  else:
    notes: list[str] = []
    fits, comparisons = fit_all(points, scale.baselines[0] if scale.baselines else None, scale.bootstrap,
                                config.seed, scale.target_loss, notes)
    out += [SCALING_DEFINITIONS, "", "### Runs", "", markdown_table([
        {"family": r.family, "C (FLOPs)": f"{r.budget_flops:.3g}", "width": r.details.get("width", "-"),
         "N": f"{r.params:,}", "D": f"{r.tokens or 0:,}", "val loss": "-" if r.loss is None else f"{r.loss:.4f}",
         "status": r.status, "seconds": f"{r.seconds or 0:.1f}"} for r in runs]), ""]
    if fits:
      out += ["### Optima per budget", "", markdown_table([row for fit in fits.values() for row in fit.to_rows()]),
              "", "### Frontiers L*(C) = a C^-b", "", markdown_table([
                  {"family": f, "a": f"{fit.frontier.a:.4g}", "b": f"{fit.frontier.b:.4f}",
                   f"b {round(100 * fit.confidence)}% CI": _interval(*fit.b_interval), "r2": f"{fit.frontier.r2:.3f}",
                   "budgets": len(fit.minima)} for f, fit in fits.items()]), ""]
    edge = sum(not m.interior for fit in fits.values() for m in fit.minima.values())
    total = sum(len(fit.minima) for fit in fits.values())
    if edge:
      out += [f"**Caution:** {edge} of {total} budget optima lie at the edge of the width grid (not interior): the "
              "grid does not bracket the compute-optimal size there, so those points (and the frontiers through "
              "them) are upper bounds on L*, not optima. Widen `scale.widths` or raise `scale.budgets`.", ""]
    if any(len(fit.minima) < 3 for fit in fits.values()):
      out += ["**Caution:** a frontier through fewer than 3 budgets has no residuals, so its bootstrap interval "
              "has zero width; it says nothing about uncertainty.", ""]
    if comparisons:
      out += ["### Against the baseline", "", markdown_table([
          {"family": c.family, "baseline": c.baseline, "scales faster": f"{c.speedup_percent:+.1f}%",
           "CI": _interval(*c.speedup_interval), "target loss": f"{c.target_loss:.4f}",
           "compute ratio": f"{c.compute_ratio:.3g}", "ratio CI": _interval(*c.compute_ratio_interval)}
          for c in comparisons]), "", f"Target loss: {comparisons[0].target_loss_source}.", ""]
    if notes:
      out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
  out += ["## Plots", ""] + _plots(files, journal, points, fits) + [""]
  files.report.write_text("\n".join(out))
  return files.report
