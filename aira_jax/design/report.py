"""The report of a design run, `runs/<id>/report.md`, rebuilt from the journal and the store alone.

Leaderboard (search metric, the final metric such as test accuracy, which is never used for search) with the
baselines a classifier must beat (the majority-class rate the scorer recorded, uniform chance), the search per
agent (analyses counted apart from steps: never evaluated, never scored or failed candidates), each agent's latest
analysis, where candidates failed (by stage), the best metric so far over time (`best_so_far.png` next to
report.md, when matplotlib is installed), and the best candidate's code.
"""

from __future__ import annotations

import collections
import datetime
import pathlib

import jax

from aira_jax.agents.journal import Journal
from aira_jax.agents.session import distinct_best, fault_lines, latest_analysis_lines
from aira_jax.results.markdown import markdown_table
from aira_jax.design.config import DesignConfig
from aira_jax.design.evaluator import code_key
from aira_jax.design.heuristic import seed_name
from aira_jax.design.sandbox import describe_isolation
from aira_jax.results import plots
from aira_jax.results.run_files import RunFiles
from aira_jax.results.store import ResultStore


def _fmt(value) -> str:
  return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def _separation(best, rows, metric: str) -> list[str]:
  """A sentence saying which leaders the data cannot tell apart from the best (within 2 standard errors of the
  difference, each candidate's binomial se from its trusted scorer), or nothing when no se is known."""
  errors = [(node, rows[code_key(node.payload)].details.get("metrics", {}).get(f"{metric}_se")
             if code_key(node.payload) in rows else None) for node in best]
  if len(errors) < 2 or any(se is None or node.metric is None for node, se in errors):
    return []
  (top, top_se), rest = errors[0], errors[1:]
  tied = [node for node, se in rest if abs(top.metric - node.metric) <= 2 * (top_se ** 2 + se ** 2) ** 0.5]
  if not tied:
    return ["The best candidate is ahead of every other by more than 2 standard errors of the difference.", ""]
  return [f"{len(tied)} of the other {len(rest)} candidates are within 2 standard errors of the best (the se of a "
          f"difference from the two binomial se's, as if independent: conservative, since all share the "
          f"validation set): the data cannot rank them; treat them as tied with the best.", ""]


def _classes(task: str) -> int | None:
  """The number of classes of an LRA task ("lra-listops": 10), None for any other task."""
  if not task.startswith("lra-"):
    return None
  from aira_jax.design.tasks.lra_training import TASKS  # lazily: it imports the harness's training stack
  return TASKS.get(task.removeprefix("lra-"), (None, None))[1]


def _rates(rows, name: str) -> str | None:
  """The recorded rate `name` of the scored rows (one value, or "low-high" if resumed runs differ), or None."""
  recorded = (row.details.get("metrics", {}).get(name) for row in rows.values())
  values = sorted({float(v) for v in recorded if isinstance(v, (int, float)) and not isinstance(v, bool)})
  if not values:
    return None
  return _fmt(values[0]) if len(values) == 1 else f"{_fmt(values[0])}-{_fmt(values[-1])}"


def _baselines(task: str, rows, metric: str) -> list[str]:
  """A sentence giving the scores that mean nothing was learned: the majority-class rate the trusted scorer
  recorded (`chance`: always answering the training labels' most common class, scored on the validation
  labels; `test_chance` on the test labels) and uniform chance (1 / classes); nothing when neither is known."""
  majority, test_majority, classes = _rates(rows, "chance"), _rates(rows, "test_chance"), _classes(task)
  parts = ([f"majority-class rate {majority} (always answering the training labels' most common class)"]
           if majority else []) + ([f"uniform chance {_fmt(1 / classes)} (1 / {classes} classes)"] if classes else [])
  if not parts:
    return []
  test = f" On the test labels the majority-class rate is {test_majority}." if test_majority else ""
  return [f"Baselines on the validation labels: {', '.join(parts)}; a {metric} at or below these learned "
          f"nothing.{test}", ""]


def _plots(files: RunFiles, journal: Journal, metric: str, lower_is_better: bool) -> list[str]:
  """Draws `best_so_far.png` next to report.md (minutes since the first node on x, one series per agent);
  returns its link, or why it was skipped; nothing before the first node."""
  if not journal.nodes:
    return []
  start = min(n.created_at for n in journal.nodes)
  series = collections.defaultdict(list)
  for node in sorted((n for n in journal.nodes if not n.is_analysis), key=lambda n: n.created_at):
    series[node.agent_id].append(((node.created_at - start) / 60, node.metric if node.is_good else None))
  try:
    plots.plot_best_so_far(series, files.root / "best_so_far.png", lower_is_better=lower_is_better,
                           xlabel="minutes since the first node", ylabel=metric, title=f"Best {metric} so far")
  except plots.PlotsUnavailable as e:
    return [f"Plots skipped: {e}"]
  return ["![best so far](best_so_far.png)"]


def write_report(config: DesignConfig, files: RunFiles) -> pathlib.Path:
  """Writes `report.md` for the design run in `files.root`; returns its path."""
  journal = Journal.load(files.journal)
  with ResultStore(files.store) as store:
    meta = store.get_meta("design", {}) or {}
    rows = {row.key: row for row in store.evaluations()}
  metric, final_metric = meta.get("metric", "metric"), meta.get("final_metric")
  task = meta.get("task", config.search.task)
  lower = bool(meta["lower_is_better"]) if "lower_is_better" in meta else journal.lower_is_better
  best = distinct_best(journal, 10)
  out = [f"# AIRA-Design run {files.root.name}", "",
         f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}; jax {jax.__version__} on {jax.default_backend()}. "
         f"Task {task} (the agents write `{meta.get('filename', 'the file')}`; "
         f"search metric {metric}, {'lower' if lower else 'higher'} is better"
         + (f"; {final_metric} is reported, never searched on" if final_metric else "") + "). Agents: "
         + ", ".join(f"{a.name} ({a.policy}, {a.llm or 'built-in'})" for a in config.search.agents) + ".", ""]
  isolation = meta.get("isolation")
  if isolation is not None:
    out += [f"**Sandbox: {describe_isolation(isolation)}, on {meta.get('executor', 'this machine')}.** Metrics "
            "were computed outside the candidates' processes, from their predictions.", ""]
  out += fault_lines(meta, "search" if meta.get("interrupted") else None)
  leaderboard = []
  for rank, node in enumerate(best, start=1):
    key = code_key(node.payload)
    row = rows.get(key)
    metrics = row.details.get("metrics", {}) if row else {}
    se = metrics.get(f"{metric}_se")
    leaderboard.append({"rank": rank, metric: _fmt(node.metric), **({"± se": _fmt(se)} if se is not None else {}),
                        **({final_metric: _fmt(metrics.get(final_metric))} if final_metric else {}),
                        "seed": seed_name(node.payload) or "-", "candidate": key, "agent": node.agent_id,
                        "operator": node.operator, "plan": node.plan[:80].replace("|", "/")})
  out += ["## Leaderboard", ""] + _baselines(task, rows, metric)
  out += [markdown_table(leaderboard) or "No candidate was scored.", ""]
  out += _separation(best, rows, metric)
  nodes = journal.nodes
  steps, analyses = [n for n in nodes if not n.is_analysis], journal.analyses()
  written = f", {len(analyses)} analyses ({sum(n.is_buggy for n in analyses)} failed)" if analyses else ""
  failed = collections.Counter(row.details.get("failed_stage") or "unknown" for row in rows.values() if row.is_buggy)
  out += ["## Search", "",
          f"- nodes: {len(nodes)} ({sum(n.is_good for n in steps)} scored, {sum(n.is_buggy for n in steps)} failed"
          f"{written}); candidates run in the sandbox: {len(rows)} "
          f"({sum(r.seconds or 0 for r in rows.values()):.0f} s)",
          "- failures by stage: " + (", ".join(f"{k} x{v}" for k, v in failed.most_common()) or "none")]
  tokens = sum(n.tokens for n in nodes)
  if tokens:
    out.append(f"- LLM tokens: {tokens:,}")
  per_agent = []
  for agent in sorted({n.agent_id for n in nodes}):
    mine = journal.by_agent(agent)
    good = [n for n in mine if n.is_good]
    pick = min if lower else max
    top = pick(good, key=lambda n: n.metric, default=None)
    per_agent.append({"agent": agent, "steps": sum(not n.is_analysis for n in mine), "scored": len(good),
                      "failed": sum(n.is_buggy and not n.is_analysis for n in mine),
                      "best": _fmt(top.metric) if top else "-"})
  out += ["", markdown_table(per_agent), ""]
  latest = latest_analysis_lines(journal)
  if latest:
    out += [*latest, ""]
  made = _plots(files, journal, metric, lower)
  if made:
    out += ["## Plots", "", *made, ""]
  if best:
    out += [f"## Best candidate ({code_key(best[0].payload)}, {metric} {_fmt(best[0].metric)})", "",
            f"Plan: {best[0].plan}", "", "```python", best[0].payload.rstrip(), "```", "",
            "Every candidate's file, logs and stage records are in `candidates/<key>/`.", ""]
  files.report.write_text("\n".join(out))
  return files.report
