#!/usr/bin/env bash
# One-shot GPU check, run from the repo root on the GPU machine: environment, the GPU kernel tests
# (tests marked `gpu`: compiled Pallas kernels against the float32 reference), optionally the attention
# block-size sweep (experiments/bench/attention_sweep.py; SWEEP_BUDGET > 0), the kernel benchmark
# (experiments/bench/kernels.py, bfloat16, the issue's target shapes; attention against cuDNN, without the xla row,
# whose compiles cost 15-30 s per shape; with the sweep's best blocks when it ran), then the float32 kernels at the
# trainer's shapes (models compute in float32 by default, and impl="auto" must pick the faster path there too).
# Logs go to $OUT/ (8 files at most, as a device run returns: env.log, gpu_tests.log, stderr.log (tracebacks),
# bench.log, bench.json, bench_f32.json, sweep.log, sweep.json); the benchmark tables come last, then impl="auto"'s
# measured attention choices from the bfloat16 run (experiments/bench/auto_choices.py; rows for
# pallas_kernels._dispatch.MEASURED_CHOICES).
#
#   OUT=/tmp/gpu_check bash experiments/bench/gpu_check.sh      # < 5 min on an H200 (the steps' timeouts: 285 s)
#   SWEEP_BUDGET=100 ...                                         # the sweep first (+ up to 170 s)
#   QUICK=1 ...                                                  # float32 tests only, 1 shape per kernel
#
# Wheels: if .whl/ holds wheels (e.g. jax-triton for impl="triton"), they are installed into /tmp/site first
# (no network there; see the device README).
# Knobs (env): TEST_FILTER (pytest -k expression), QUICK, PYTHON, PYTEST_WORKERS (8), TEST_TIMEOUT (100 s),
# SWEEP_BUDGET (0: no sweep; else no candidate starts later), SWEEP_TIMEOUT (170 s), BENCH_BUDGET (110 s: no
# benchmark row starts later), BENCH_TIMEOUT (140 s: hard stop), BENCH_DTYPE (bfloat16), BENCH_IMPLS
# (xla,pallas,cudnn,mosaic,triton; e.g. add pallas_split,pallas_fused to time both attention backwards), F32_BUDGET (25 s;
# 0 skips the float32 step), F32_TIMEOUT (45 s), BENCH_EXTRA (more benchmark flags for both benchmark steps, e.g.
# "--quick --set quick" for a CPU dry run of this script; SWEEP_EXTRA likewise "--quick"), TRAIN_STEP_TIMEOUT (0: skip;
# else run experiments/bench/gpu_train_step.py, a whole 350m model's training step: tokens/s, MFU, memory, appended
# to bench.log; about 200 s covers its defaults: 2 layouts x 4 impls), TRAIN_STEP_EXTRA (its flags, e.g. "--layouts llama --impls auto,xla"),
# MOSAIC_SWEEP_BUDGET (0: skip; else experiments/bench/mosaic_sweep.py, the impl="mosaic" block sweep, appended to
# sweep.log; MOSAIC_SWEEP_HEAD_DIMS (128), MOSAIC_SWEEP_TIMEOUT (200 s), MOSAIC_SWEEP_EXTRA ("--dry-run" on CPU)).
set -u -o pipefail
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-$(command -v python || command -v python3)}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
: > "$OUT/stderr.log"
start=$SECONDS
step() { printf '\n=== [%3d s] %s\n' $((SECONDS - start)) "$*"; }
status() { echo "rc=$1$([ "$1" = 124 ] && echo ' (TIMED OUT)')"; }
read -r -a bench_extra <<< "${BENCH_EXTRA:-}"

if compgen -G ".whl/*.whl" > /dev/null; then
  step "installing carried wheels: $(ls .whl)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

step "environment"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi failed"
  timeout -k 5 60 "$PY" -c "
import importlib.util, sys, jax, jaxlib
print('python', sys.version.split()[0], '| jax', jax.__version__, '| jaxlib', jaxlib.__version__)
print('backend', jax.default_backend(), '| devices', jax.devices())
print('jax_triton importable:', importlib.util.find_spec('jax_triton') is not None)
"
} 2>&1 | tee "$OUT/env.log"

step "GPU kernel tests (log: $OUT/gpu_tests.log; failures are listed in the summary)"
# No -x: in a one-shot run, one failing tolerance should not hide the other results; the timeout bounds cost.
# -v: each test's result is in the log as it finishes, so a run cut by the timeout still names them.
test_args=(tests/pallas_kernels -v --run-gpu -m gpu -p no:cacheprovider -rfE --tb=short --durations=8
           --continue-on-collection-errors -W ignore::UserWarning)
[ "$QUICK" = 1 ] && test_args+=(-k f32)
[ -n "${TEST_FILTER:-}" ] && test_args+=(-k "$TEST_FILTER")
if "$PY" -c "import xdist" 2>/dev/null; then test_args+=(-n "${PYTEST_WORKERS:-8}"); fi
# The tests time nothing, so XLA need not autotune its GEMMs while compiling the references (when this jaxlib
# still knows the flag: an unknown XLA flag aborts the process).
test_xla_flags="${XLA_FLAGS:-}"
if XLA_FLAGS="--xla_gpu_autotune_level=0 $test_xla_flags" timeout -k 5 60 "$PY" -c "import jax; jax.devices()" \
    > /dev/null 2>&1; then
  test_xla_flags="--xla_gpu_autotune_level=0 $test_xla_flags"
fi
XLA_FLAGS="$test_xla_flags" XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -k 10 "${TEST_TIMEOUT:-100}" \
  "$PY" -m pytest "${test_args[@]}" > "$OUT/gpu_tests.log" 2>&1
test_rc=$?
tail -n 3 "$OUT/gpu_tests.log"

sweep_rc=skipped
if [ "${SWEEP_BUDGET:-0}" != 0 ]; then
  step "attention block-size sweep (log: $OUT/sweep.log)"
  read -r -a sweep_extra <<< "${SWEEP_EXTRA:-}"
  timeout -k 10 "${SWEEP_TIMEOUT:-170}" "$PY" experiments/bench/attention_sweep.py --json "$OUT/sweep.json" \
    --budget-s "${SWEEP_BUDGET}" ${sweep_extra[@]+"${sweep_extra[@]}"} 2>>"$OUT/stderr.log" | tee "$OUT/sweep.log"
  sweep_rc=$?
fi

mosaic_rc=skipped
if [ "${MOSAIC_SWEEP_BUDGET:-0}" != 0 ]; then
  step "Mosaic GPU attention block sweep (appended to $OUT/sweep.log)"
  read -r -a mosaic_extra <<< "${MOSAIC_SWEEP_EXTRA:-}"
  timeout -k 10 "${MOSAIC_SWEEP_TIMEOUT:-200}" "$PY" experiments/bench/mosaic_sweep.py \
    --budget-s "$MOSAIC_SWEEP_BUDGET" --head-dims "${MOSAIC_SWEEP_HEAD_DIMS:-128}" \
    ${mosaic_extra[@]+"${mosaic_extra[@]}"} 2>>"$OUT/stderr.log" | tee -a "$OUT/sweep.log"
  mosaic_rc=$?
fi

step "kernel benchmark, bfloat16, the issue's target shapes (log: $OUT/bench.log)"
# Attention against cuDNN (no xla row; the Pallas-Triton and the Mosaic GPU kernels), the scans against xla and, where
# jax_triton imports, their raw Triton kernels.
bench_args=(--set targets --impls "${BENCH_IMPLS:-xla,pallas,cudnn,mosaic,triton}" --no-baseline attention
            --dtype "${BENCH_DTYPE:-bfloat16}" --json "$OUT/bench.json" --budget-s "${BENCH_BUDGET:-110}")
[ -s "$OUT/sweep.json" ] && bench_args+=(--attention-blocks "$OUT/sweep.json")
[ "$QUICK" = 1 ] && bench_args+=(--max-shapes 1 --target-s 0.2)
timeout -k 10 "${BENCH_TIMEOUT:-140}" "$PY" experiments/bench/kernels.py "${bench_args[@]}" \
  ${bench_extra[@]+"${bench_extra[@]}"} 2>>"$OUT/stderr.log" | tee "$OUT/bench.log"
bench_rc=$?

f32_rc=skipped
if [ "${F32_BUDGET:-25}" != 0 ]; then
  step "kernel benchmark, float32, the trainer's shapes (log: appended to $OUT/bench.log)"
  timeout -k 5 "${F32_TIMEOUT:-45}" "$PY" experiments/bench/kernels.py --set cpu --impls xla,pallas --dtype float32 \
    --json "$OUT/bench_f32.json" --budget-s "${F32_BUDGET:-25}" ${bench_extra[@]+"${bench_extra[@]}"} \
    2>>"$OUT/stderr.log" | tee -a "$OUT/bench.log"
  f32_rc=$?
fi

train_rc=skipped
if [ "${TRAIN_STEP_TIMEOUT:-0}" != 0 ]; then
  step "a whole model's training step (experiments/bench/gpu_train_step.py; appended to $OUT/bench.log)"
  read -r -a train_extra <<< "${TRAIN_STEP_EXTRA:-}"
  timeout -k 10 "$TRAIN_STEP_TIMEOUT" "$PY" experiments/bench/gpu_train_step.py ${train_extra[@]+"${train_extra[@]}"} \
    2>>"$OUT/stderr.log" | tee -a "$OUT/bench.log"
  train_rc=$?
fi

step "summary"
echo "gpu tests: $(status $test_rc)"
grep -c -E '(^| )PASSED( |$)' "$OUT/gpu_tests.log" | sed 's/$/ passed (counted from the log)/'
grep -E '(^| )(FAILED|ERROR) |[0-9]+ (passed|failed|skipped|error)' "$OUT/gpu_tests.log" | sort -u | tail -n 20
echo "sweep: $(status $sweep_rc); Mosaic block sweep: $(status $mosaic_rc)"
[ -s "$OUT/sweep.log" ] && sed -n '/^best per head_dim/,$p' "$OUT/sweep.log"
[ -s "$OUT/sweep.log" ] && grep '^best for d' "$OUT/sweep.log"
echo "benchmark bf16: $(status $bench_rc); float32: $(status $f32_rc);" \
  "$(grep -c '^=== .* failed ===' "$OUT/stderr.log") row tracebacks in stderr.log"
echo "training step: $(status $train_rc)"
echo "total ${SECONDS}s"
# The tables (printed, not saved: at most 8 files come back from a device run, and the JSON files hold the rows).
for json in "$OUT/bench.json" "$OUT/bench_f32.json"; do
  echo
  if [ -s "$json" ]; then
    timeout -k 5 60 "$PY" experiments/bench/kernels.py --table-from "$json" 2>>"$OUT/stderr.log"
  else
    echo "no benchmark rows in $(basename "$json")"
  fi
done
if [ -s "$OUT/bench.json" ]; then
  echo
  echo "impl=\"auto\"'s measured choices for attention from this run (experiments/bench/auto_choices.py):"
  timeout -k 5 60 "$PY" experiments/bench/auto_choices.py "$OUT/bench.json" \
    --source "RESULTS.md, gpu_check.sh of $(date +%F)" 2>&1
fi
if [ "$train_rc" != skipped ]; then
  echo
  sed -n '/^| layout | impl /,/^run time/p' "$OUT/bench.log"
fi
