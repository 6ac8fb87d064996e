"""The report of a design run, `runs/<id>/report.md`, rebuilt from the journal and the store alone.

Leaderboard (search metric, the final metric such as test accuracy, which is never used for search), the
search per agent, where candidates failed (by stage), and the best candidate's code.
"""

from __future__ import annotations

import collections
import datetime
import pathlib

import jax

from aira_jax.agents.journal import Journal
from aira_jax.agents.session import distinct_best
from aira_jax.results.markdown import markdown_table
from aira_jax.design.config import DesignConfig
from aira_jax.design.evaluator import code_key
from aira_jax.design.heuristic import seed_name
from aira_jax.design.sandbox import describe_isolation
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


def write_report(config: DesignConfig, files: RunFiles) -> pathlib.Path:
  """Writes `report.md` for the design run in `files.root`; returns its path."""
  journal = Journal.load(files.journal)
  with ResultStore(files.store) as store:
    meta = store.get_meta("design", {}) or {}
    rows = {row.key: row for row in store.evaluations()}
  metric, final_metric = meta.get("metric", "metric"), meta.get("final_metric")
  best = distinct_best(journal, 10)
  out = [f"# AIRA-Design run {files.root.name}", "",
         f"Written {datetime.datetime.now():%Y-%m-%d %H:%M}; jax {jax.__version__} on {jax.default_backend()}. "
         f"Task {meta.get('task', config.search.task)} (the agents write `{meta.get('filename', 'the file')}`; "
         f"search metric {metric}, {'lower' if meta.get('lower_is_better') else 'higher'} is better"
         + (f"; {final_metric} is reported, never searched on" if final_metric else "") + "). Agents: "
         + ", ".join(f"{a.name} ({a.policy}, {a.llm or 'built-in'})" for a in config.search.agents) + ".", ""]
  isolation = meta.get("isolation")
  if isolation is not None:
    out += [f"**Sandbox: {describe_isolation(isolation)}.** Metrics were computed outside the candidates' "
            "processes, from their predictions.", ""]
  if meta.get("interrupted"):
    out += ["**The search was interrupted**; resume it with `--resume`.", ""]
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
  out += ["## Leaderboard", "", markdown_table(leaderboard) or "No candidate was scored.", ""]
  out += _separation(best, rows, metric)
  nodes = journal.nodes
  failed = collections.Counter(row.details.get("failed_stage") or "unknown" for row in rows.values() if row.is_buggy)
  out += ["## Search", "",
          f"- nodes: {len(nodes)} ({sum(n.is_good for n in nodes)} scored, {sum(n.is_buggy for n in nodes)} failed); "
          f"candidates run in the sandbox: {len(rows)} ({sum(r.seconds or 0 for r in rows.values()):.0f} s)",
          "- failures by stage: " + (", ".join(f"{k} x{v}" for k, v in failed.most_common()) or "none")]
  tokens = sum(n.tokens for n in nodes)
  if tokens:
    out.append(f"- LLM tokens: {tokens:,}")
  per_agent = []
  for agent in sorted({n.agent_id for n in nodes}):
    mine = journal.by_agent(agent)
    good = [n for n in mine if n.is_good]
    pick = min if meta.get("lower_is_better") else max
    top = pick(good, key=lambda n: n.metric, default=None)
    per_agent.append({"agent": agent, "steps": len(mine), "scored": len(good), "failed": len(mine) - len(good),
                      "best": _fmt(top.metric) if top else "-"})
  out += ["", markdown_table(per_agent), ""]
  if best:
    out += [f"## Best candidate ({code_key(best[0].payload)}, {metric} {_fmt(best[0].metric)})", "",
            f"Plan: {best[0].plan}", "", "```python", best[0].payload.rstrip(), "```", "",
            "Every candidate's file, logs and stage records are in `candidates/<key>/`.", ""]
  files.report.write_text("\n".join(out))
  return files.report
