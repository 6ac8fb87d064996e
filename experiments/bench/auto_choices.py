"""Turns a GPU run of `kernels.py` into impl="auto"'s measured choices for attention
(`pallas_kernels._dispatch.MEASURED_CHOICES`): per measured shape, is another impl faster than the GPU default?

For each attention shape with 16-bit rows, the default's forward+backward per-call times are compared with each
candidate's: the speed-up is the ratio of medians (default / candidate, > 1 = candidate faster) with a 95% bootstrap
interval (per-call times resampled independently). A candidate wins a shape only when its whole interval lies above
1 and it is the fastest such; otherwise the default stays (a tie, or slower, said in words). Rows whose status is
not "ok" (an error over tolerance, a failure) never win. Ranges: a measured head_dim d covers the head dims padded to
it (64: 1-64, 128: 65-128); a measured seq covers up to the next measured seq of that head_dim (the largest: all
longer ones); shorter than the shortest measured seq, the default runs.

Prints the table, then the rows to paste into `MEASURED_CHOICES` (only where a candidate won), naming --source.

  python experiments/bench/auto_choices.py bench.json --source "RESULTS.md, <section>" [--default pallas]
      [--candidates mosaic,cudnn]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

LABEL = re.compile(r"^b(\d+) s(\d+) h(\d+)/(\d+) d(\d+)")
HEAD_DIM_BUCKETS = (64, 128)
LONGEST = 2 ** 31


def ratio_interval(default_ms, candidate_ms, resamples=2000, seed=0) -> tuple[float, float, float]:
  """median(default) / median(candidate) and its 95% bootstrap interval."""
  rng = np.random.default_rng(seed)
  a, b = np.asarray(default_ms, float), np.asarray(candidate_ms, float)
  ra = np.median(rng.choice(a, (resamples, a.size)), axis=1)
  rb = np.median(rng.choice(b, (resamples, b.size)), axis=1)
  lo, hi = np.percentile(ra / rb, [2.5, 97.5])
  return float(np.median(a) / np.median(b)), float(lo), float(hi)


def verdict(ratio, lo, hi) -> str:
  if lo > 1:
    return f"faster ({ratio:.2f}x)"
  if hi < 1:
    return f"slower ({ratio:.2f}x)"
  return "tie (interval holds 1)"


def compare(rows, default: str, candidates: list[str]) -> list[dict]:
  """One entry per attention shape: head_dim, seq, the default's median ms, per candidate (ratio, lo, hi, verdict)
  or why it has none, and the winner."""
  shapes = {}
  for row in rows:
    if row.get("kernel") == "attention" and row.get("dtype") in ("bfloat16", "float16"):
      shapes.setdefault((row["shape"], row["dtype"]), {})[row["impl"]] = row
  out = []
  for (label, dtype), by_impl in shapes.items():
    match = LABEL.match(label)
    base = by_impl.get(default)
    if not match or not base or base.get("status") != "ok" or "times" not in base.get("fwdbwd", {}):
      continue
    entry = dict(label=label, dtype=dtype, head_dim=int(match.group(5)), seq=int(match.group(2)),
                 default_ms=base["fwdbwd"]["median"], candidates={}, winner=default)
    best = 1.0
    for impl in candidates:
      row = by_impl.get(impl)
      if not row or row.get("status") != "ok" or "times" not in row.get("fwdbwd", {}):
        entry["candidates"][impl] = (row or {}).get("status", "not measured")
        continue
      ratio, lo, hi = ratio_interval(base["fwdbwd"]["times"], row["fwdbwd"]["times"])
      entry["candidates"][impl] = (ratio, lo, hi, verdict(ratio, lo, hi))
      if lo > 1 and ratio > best:
        best, entry["winner"] = ratio, impl
    out.append(entry)
  return sorted(out, key=lambda e: (e["head_dim"], e["seq"], e["dtype"]))


def choices(entries, default: str, capability_major: int, source: str) -> list[dict]:
  """`MeasuredChoice` fields for the shape ranges a candidate won (adjacent ranges with one winner merged). A shape
  measured in both 16-bit dtypes counts only if both agree on the winner."""
  winners = {}
  for e in entries:
    key = (e["head_dim"], e["seq"])
    winners[key] = e["winner"] if winners.get(key, e["winner"]) == e["winner"] else default
  rows = []
  for head_dim in sorted({d for d, _ in winners}):
    bucket = next((b for b in HEAD_DIM_BUCKETS if b >= head_dim), head_dim)
    low = max([b for b in HEAD_DIM_BUCKETS if b < bucket], default=0) + 1
    seqs = sorted(s for d, s in winners if d == head_dim)
    for i, seq in enumerate(seqs):
      impl, end = winners[(head_dim, seq)], seqs[i + 1] if i + 1 < len(seqs) else LONGEST
      if impl == default:
        continue
      if rows and rows[-1]["impl"] == impl and rows[-1]["max_seq"] == seq and rows[-1]["max_head_dim"] == bucket:
        rows[-1]["max_seq"] = end
        continue
      rows.append(dict(kernel="flash_attention", capability_major=capability_major, min_head_dim=low,
                       max_head_dim=bucket, min_seq=seq, max_seq=end, impl=impl, source=source))
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("json", nargs="+", help="kernels.py --json files (their rows are pooled)")
  p.add_argument("--source", required=True, help="the RESULTS.md section the rows will cite")
  p.add_argument("--default", default="pallas", help="the GPU default impl (AUTO_ON_GPU); default pallas")
  p.add_argument("--candidates", default="mosaic,cudnn", help="impls that may replace it; default mosaic,cudnn")
  args = p.parse_args(argv)
  rows, capabilities = [], set()
  for path in args.json:
    try:
      data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
      print(f"error: cannot read {path}: {e}", file=sys.stderr)
      return 2
    rows += data.get("rows", [])
    capabilities.add(str(data.get("env", {}).get("compute_capability", "")).split(".")[0])
  if len(capabilities) != 1 or not next(iter(capabilities)).isdigit():
    print(f"error: the files must come from one GPU generation with a recorded compute capability; got "
          f"{sorted(capabilities)} (kernels.py records it since issue 23)", file=sys.stderr)
    return 2
  candidates = [c for c in args.candidates.split(",") if c]
  entries = compare(rows, args.default, candidates)
  if not entries:
    print(f"error: no 16-bit attention shape has an ok {args.default!r} row with per-call times", file=sys.stderr)
    return 2
  print(f"| shape | dtype | {args.default} f+b ms | " + " | ".join(f"{c} speed-up [95% CI]" for c in candidates)
        + " | auto runs |")
  print("|---" * (4 + len(candidates)) + "|")
  for e in entries:
    cells = [f"{c[0]:.2f}x [{c[1]:.2f}, {c[2]:.2f}] {c[3]}" if isinstance(c, tuple) else c
             for c in e["candidates"].values()]
    print(f"| {e['label']} | {e['dtype']} | {e['default_ms']:.3f} | " + " | ".join(cells) + f" | {e['winner']} |")
  found = choices(entries, args.default, int(next(iter(capabilities))), args.source)
  print(f"\n{len(found)} measured choice(s) for pallas_kernels._dispatch.MEASURED_CHOICES"
        + (":" if found else f" (the default, {args.default}, stays everywhere)."))
  for c in found:
    print("    MeasuredChoice(" + ", ".join(f"{k}={v!r}" for k, v in c.items()) + "),")
  return 0


if __name__ == "__main__":
  sys.exit(main())
