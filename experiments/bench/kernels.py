"""Kernel benchmark: correctness against the float32 reference, and timing, of every implementation of the
`pallas_kernels` entry points (flash_attention, ssd, selective_scan), with the xla baseline in the same process.

  python experiments/bench/kernels.py [--quick] [--kernels attention,ssd,selective_scan] [--dtype bfloat16]
      [--impls xla,pallas,triton] [--json OUT.json] [--budget-s S] [--max-shapes N] [--attention-blocks SWEEP.json]
  python experiments/bench/kernels.py --table-from OUT.json   # reprint the table of a (maybe partial) run

Per row: relative error ||out - ref|| / ||ref|| of the output and of each gradient (vjp with a random cotangent)
against the plain-jnp reference run in float32 (highest matmul precision) on the upcast inputs; compile time; median
and p10/p90 of jit-compiled forward and forward+backward calls, rotating over input sets. A failing row is
reported in the table (full traceback on stderr) and the run goes on. See README.md for the columns.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for pallas_kernels

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import _cases  # noqa: E402  (sibling modules: this directory is sys.path[0])
import _measure as m  # noqa: E402
from pallas_kernels.attention.api import SIXTEEN_BIT_IMPLS  # noqa: E402

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
TOL = {"float32": 2e-3, "bfloat16": 2e-2}  # float32: Triton dots may run in tf32
SHORT = {"float32": "f32", "bfloat16": "bf16"}
N_SETS = 3


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (CPU, interpret mode)")
  p.add_argument("--set", default=None, choices=_cases.SETS,
                 help="shape set (default: 'quick' with --quick, else 'default'); 'targets': the issue's targets")
  p.add_argument("--kernels", default=",".join(_cases.KERNELS))
  p.add_argument("--dtype", default="bfloat16", help="bfloat16 | float32 (or both, comma-separated)")
  p.add_argument("--impls", default=None, help="default: xla,pallas,triton on GPU/TPU, xla,pallas_interpret else; "
                 "also, for attention, cudnn (GPU), reference (attention_reference, autodiff), and pallas_split / "
                 "pallas_fused (impl=pallas with that backward; with both, attention gets no plain pallas row)")
  p.add_argument("--no-baseline", default="", metavar="KERNELS",
                 help="kernels (comma-separated) run without their xla baseline row, e.g. attention at the targets, "
                 "where cuDNN is the comparison and the xla impl compiles for 15-30 s per shape on a GPU")
  p.add_argument("--json", default=None, help="write every row here (rewritten after each row)")
  p.add_argument("--budget-s", type=float, default=None, help="skip the rows not started after this many s")
  p.add_argument("--max-shapes", type=int, default=None, help="first N shapes of each kernel")
  p.add_argument("--shapes", default=None, metavar="TEXT[,TEXT]",
                 help="only the shapes whose label contains one of these (e.g. 's2048 h16/16 d64,s8192')")
  p.add_argument("--target-s", type=float, default=None, help="time spent per timing loop (default 0.5, quick 0.1)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--table-from", default=None, help="print the table of this --json file and exit")
  p.add_argument("--attention-blocks", default=None,
                 help="attention_sweep.py JSON: run impl='pallas' attention with its best blocks per head_dim")
  return p.parse_args(argv)


def environment() -> dict:
  import jaxlib
  return dict(jax=jax.__version__, jaxlib=jaxlib.__version__, python=platform.python_version(),
              backend=jax.default_backend(), device_kind=jax.devices()[0].device_kind,
              compute_capability=getattr(jax.devices()[0], "compute_capability", None),
              device_count=jax.device_count())


def select_cases(all_cases, kernels, shapes: str | None, max_shapes: int | None) -> dict:
  """{kernel: cases} of `kernels`: those whose label contains one of the comma-separated `shapes` (all when None),
  the first `max_shapes` of each; exits with a message when nothing is left."""
  wanted = _names(shapes) if shapes else None
  chosen = {k: [c for c in all_cases[k] if wanted is None or any(w in c.label for w in wanted)][:max_shapes]
            for k in kernels}
  if not any(chosen.values()):
    raise SystemExit(f"no shape of {', '.join(kernels)} matches --shapes {shapes!r}; the labels: "
                     + "; ".join(c.label for k in kernels for c in all_cases[k]))
  return chosen


def skip_reason(kernel, impl, backend, dtype_name="bfloat16"):
  """None when `impl` can run here on `dtype_name` inputs; else why not."""
  if impl in SIXTEEN_BIT_IMPLS and backend != "gpu":
    return f"skip: {impl} needs gpu (backend {backend})"
  if impl in SIXTEEN_BIT_IMPLS and dtype_name not in ("bfloat16", "float16"):
    return f"skip: {impl} attention takes 16-bit inputs, not {dtype_name}"
  if impl in ("pallas", "pallas_split") and backend not in ("gpu", "tpu"):
    return f"skip: {impl} needs gpu/tpu (backend {backend})"
  if impl == "pallas_fused" and backend != "gpu":
    return f"skip: pallas_fused needs gpu (backend {backend}; Mosaic TPU has no atomics)"
  if impl == "triton":
    if backend != "gpu":
      return f"skip: triton needs gpu (backend {backend})"
    import importlib.util
    if importlib.util.find_spec("jax_triton") is None:
      return "skip: jax_triton not importable"
  return None


def reference(case, args, ct):
  """The plain-jnp reference (attention: impl "reference"; the scans: "xla") in float32, highest matmul
  precision, on the upcast inputs -> host (out, grads)."""
  up = tuple(a.astype(jnp.float32) for a in args) + (ct.astype(jnp.float32),)
  oracle = "reference" if "reference" in _cases.IMPLS[case.kernel] else "xla"
  with jax.default_matmul_precision("highest"):
    _, _, (out, grads) = m.compile_fn(m.forward_backward_fn(case.call(oracle)), up, timed=False)
  return np.asarray(out), [np.asarray(g) for g in grads]


def run_impl(row, case, impl, arg_sets, cts, ref, tol, timing):
  fn = case.call(impl)
  fwd, row["compile_fwd_s"], out0 = m.compile_fn(m.forward_fn(fn), arg_sets[0])
  fb_sets = [a + (c,) for a, c in zip(arg_sets, cts)]
  fwdbwd, row["compile_fwdbwd_s"], (out, grads) = m.compile_fn(m.forward_backward_fn(fn), fb_sets[0])
  if ref is not None:
    names = ["out"] + [f"d{n}" for n in case.names]
    errs = [m.rel_err(out, ref[0])] + [m.rel_err(g, r) for g, r in zip(grads, ref[1])]
    row["errors"] = dict(zip(names, errs))
    row["max_err"] = float(np.max(errs))  # NaN propagates
    bad = [n for n, e in zip(names, errs) if not e < tol]
    nan = [n for n, e in zip(names, errs) if np.isnan(e)]
    row["status"] = (f"NaN in {','.join(nan)}" if nan else
                     f"ERR>{tol:g} in {','.join(bad)}" if bad else "ok")
  else:
    row["status"] = "unchecked: the reference failed"
  row["fwd"] = m.time_fn(fwd, arg_sets, **timing)
  row["fwdbwd"] = m.time_fn(fwdbwd, fb_sets, **timing)
  t_f, t_b = row["fwd"]["median"] * 1e-3, row["fwdbwd"]["median"] * 1e-3
  if case.flops:
    row["tflops"] = [case.flops / t_f / 1e12, 3.5 * case.flops / t_b / 1e12]
  else:
    io_f = m.nbytes(arg_sets[0]) + m.nbytes(out0)
    io_b = io_f + m.nbytes(cts[0]) + m.nbytes(grads)
    row["gbps"] = [io_f / t_f / 1e9, io_b / t_b / 1e9]


def run_case(case, dtype_name, impls, args, timing, deadline, emit, order):
  """Runs every impl of one case (xla first); `emit(row)` records each row."""
  dtype = DTYPES[dtype_name]
  backend = jax.default_backend()
  base = dict(kernel=case.kernel, shape=case.label, dtype=dtype_name, order=order)
  rows, ref = [], None
  try:
    rng = np.random.default_rng([args.seed, *order])
    raw = [case.make(rng) for _ in range(N_SETS)]
    arg_sets = [tuple(jnp.asarray(x, dtype if low else jnp.float32) for x, low in zip(xs, case.low))
                for xs in raw]
    out_spec = jax.eval_shape(case.call("xla"), *arg_sets[0])
    cts = [jnp.asarray(rng.standard_normal(out_spec.shape, np.float32), out_spec.dtype) for _ in range(N_SETS)]
    if time.monotonic() < deadline:
      try:
        ref = reference(case, arg_sets[0], cts[0])
      except Exception as e:  # noqa: BLE001  (report, go on without errors)
        _report(f"{case.kernel} {case.label} {dtype_name} reference", e)
  except Exception as e:  # noqa: BLE001
    _report(f"{case.kernel} {case.label} {dtype_name} inputs", e)
    emit(dict(base, impl="-", status=f"FAIL inputs: {_first_line(e)}"))
    return
  both_backwards = {"pallas_split", "pallas_fused"} <= set(impls)
  no_baseline = case.kernel in _names(args.no_baseline)
  for i, impl in enumerate(impls):
    if (impl not in _cases.IMPLS[case.kernel] or (impl == "pallas" and case.kernel == "attention" and both_backwards)
        or (impl == "xla" and no_baseline)):
      continue  # (attention's "pallas" row would repeat one of the two backwards' rows)
    row = dict(base, impl=impl, order=(*order, i))
    reason = skip_reason(case.kernel, impl, backend, dtype_name)
    if reason is None and time.monotonic() > deadline:
      reason = "skip: time budget"
    if reason:
      row["status"] = reason
    else:
      try:
        run_impl(row, case, impl, arg_sets, cts, ref, TOL[dtype_name], timing)
      except Exception as e:  # noqa: BLE001
        _report(f"{case.kernel} {case.label} {dtype_name} {impl}", e)
        row["status"] = f"FAIL: {_first_line(e)}"
        row["error"] = "".join(traceback.format_exception(e))
    rows.append(row)
    _add_ratios(rows)
    print(_row_line(row), flush=True)
    emit(row)


def _add_ratios(rows):
  """ratio: xla time / this time (> 1 = faster); ratio_cudnn: the same against the cudnn row, if any."""
  for key, impl in (("ratio", "xla"), ("ratio_cudnn", "cudnn")):
    base = next((r for r in rows if r["impl"] == impl and "fwd" in r), None)
    for r in rows:
      if base and "fwd" in r:
        r[key] = [base["fwd"]["median"] / r["fwd"]["median"], base["fwdbwd"]["median"] / r["fwdbwd"]["median"]]


def _names(text: str) -> list[str]:
  """The non-empty entries of a comma-separated option."""
  return [name.strip() for name in text.split(",") if name.strip()]


def _first_line(e):
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def _report(what, e):
  print(f"\n=== {what} failed ===", file=sys.stderr)
  traceback.print_exception(e, file=sys.stderr)
  sys.stderr.flush()


def _row_line(r):
  head = f"[{r['kernel']} | {r['shape']} | {r['dtype']} | {r['impl']}]"
  if "fwd" not in r:
    return f"{head} {r['status']}"
  t = lambda d: f"{d['median']:.3f} ms (p10 {d['p10']:.3f}, p90 {d['p90']:.3f}, min {d['min']:.3f}, n={d['n']})"
  errs = " ".join(f"{k} {v:.1e}" for k, v in r.get("errors", {}).items())
  perf = (f"{r['tflops'][0]:.3g}/{r['tflops'][1]:.3g} TFLOP/s" if "tflops" in r else
          f"{r['gbps'][0]:.3g}/{r['gbps'][1]:.3g} GB/s")
  return (f"{head}\n  compile {r['compile_fwd_s']:.1f} s fwd, {r['compile_fwdbwd_s']:.1f} s fwd+bwd\n"
          f"  fwd {t(r['fwd'])}\n  fwd+bwd {t(r['fwdbwd'])}\n  {perf} (fwd/fwd+bwd)\n"
          f"  rel err: {errs or 'n/a'}\n  -> {r['status']}")


def table(rows, ceilings=None) -> str:
  cols = ["kernel", "shape", "dtype", "impl", "fwd ms", "f+b ms", "x fwd", "x f+b", "cudnn x fwd/f+b",
          "perf fwd/f+b", "compile s", "max err", "status"]
  lines = []
  for r in sorted(rows, key=lambda r: r["order"]):
    ms = lambda d: f"{d['median']:.3f}±{50 * (d['p90'] - d['p10']) / d['median']:.0f}%"
    has = "fwd" in r
    perf = ""
    if "tflops" in r:
      perf = f"{r['tflops'][0]:.3g}/{r['tflops'][1]:.3g} TF/s"
      if ceilings:
        perf += f" ({100 * r['tflops'][1] / ceilings['bf16_tflops']:.0f}%)"
    elif "gbps" in r:
      perf = f"{r['gbps'][0]:.3g}/{r['gbps'][1]:.3g} GB/s"
      if ceilings:
        perf += f" ({100 * r['gbps'][1] / ceilings['copy_gbps']:.0f}%)"
    lines.append([
        r["kernel"], r["shape"], SHORT.get(r["dtype"], r["dtype"]), r["impl"],
        ms(r["fwd"]) if has else "-", ms(r["fwdbwd"]) if has else "-",
        f"{r['ratio'][0]:.2f}" if "ratio" in r else "-", f"{r['ratio'][1]:.2f}" if "ratio" in r else "-",
        f"{r['ratio_cudnn'][0]:.2f}/{r['ratio_cudnn'][1]:.2f}" if "ratio_cudnn" in r else "-",
        perf or "-", f"{r['compile_fwd_s']:.1f}/{r['compile_fwdbwd_s']:.1f}" if has else "-",
        f"{r['max_err']:.1e}" if "max_err" in r else "-", r["status"][:70]])
  widths = [max(len(str(x)) for x in col) for col in zip(cols, *lines)]
  fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
  return "\n".join([fmt(cols), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines])


def _header(env):
  text = (f"jax {env['jax']} (jaxlib {env['jaxlib']}), python {env['python']}, backend {env['backend']}, "
          f"{env['device_count']} x {env['device_kind']}")
  for dim, sizes in env.get("attention_blocks", {}).items():
    text += f"\npallas attention blocks, head_dim {dim}: {sizes}"
  if "ceilings" in env:
    c = env["ceilings"]
    text += (f"\nmeasured ceilings: copy {c['copy_gbps']:.0f} GB/s, bf16 matmul {c['bf16_tflops']:.0f} TFLOP/s "
             "(perf columns give % of these)")
  return text


def main(argv=None):
  args = parse_args(argv)
  if args.table_from:
    data = json.loads(Path(args.table_from).read_text())
    print(_header(data["env"]))
    print(table(data["rows"], data["env"].get("ceilings")))
    return 0
  env = environment()
  if args.attention_blocks:
    import attention_sweep
    _cases.ATTENTION_BLOCKS.update(attention_sweep.load_best(args.attention_blocks))
    env["attention_blocks"] = {d: str(b) for d, b in _cases.ATTENTION_BLOCKS.items()}
  if env["backend"] == "gpu":
    env["ceilings"] = m.ceilings()
  print(_header(env), flush=True)
  kernels, dtypes, no_baseline = _names(args.kernels), _names(args.dtype), _names(args.no_baseline)
  for name, allowed, given in (("kernel", _cases.KERNELS, kernels), ("dtype", DTYPES, dtypes),
                               ("--no-baseline kernel", _cases.KERNELS, no_baseline)):
    if bad := [x for x in given if x not in allowed]:
      raise SystemExit(f"unknown {name} {bad}; choose from {', '.join(allowed)}")
  default_impls = "xla,pallas,triton" if env["backend"] in ("gpu", "tpu") else "xla,pallas_interpret"
  impls = _names(args.impls or default_impls)
  impls = ["xla"] + [i for i in impls if i != "xla"]  # the baseline runs first (except for --no-baseline kernels)
  timing = (dict(warmup=1, min_reps=3, max_reps=20, target_s=args.target_s or 0.1) if args.quick else
            dict(warmup=3, min_reps=10, max_reps=300, target_s=args.target_s or 0.5))
  print(f"kernels {kernels}, dtypes {dtypes}, impls {impls}, timing {timing}, budget {args.budget_s} s",
        flush=True)
  all_cases = _cases.cases(args.set or ("quick" if args.quick else "default"))
  per_kernel = select_cases(all_cases, kernels, args.shapes, args.max_shapes)
  start = time.monotonic()
  deadline = start + args.budget_s if args.budget_s is not None else float("inf")
  rows = []

  def emit(row):
    rows.append(row)
    if args.json:
      Path(args.json).write_text(json.dumps(dict(env=env, rows=rows), indent=1, default=str))

  # Round-robin over kernels (first shape of each kernel first), so a time budget cuts the longest tails.
  for i in range(max(len(c) for c in per_kernel.values())):
    for k, kernel in enumerate(kernels):
      if i < len(per_kernel[kernel]):
        for d, dtype_name in enumerate(dtypes):
          run_case(per_kernel[kernel][i], dtype_name, impls, args, timing, deadline, emit, order=(k, i, d))
  print(f"\nfinished in {time.monotonic() - start:.1f} s\n")
  print(_header(env))
  print(table(rows, env.get("ceilings")))
  failed = [r for r in rows if r["status"].startswith(("FAIL", "NaN", "ERR"))]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
