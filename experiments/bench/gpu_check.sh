#!/usr/bin/env bash
# One-shot GPU check, run from the repo root on the GPU machine: environment, the GPU kernel tests
# (tests marked `gpu`: compiled Pallas kernels against the float32 reference), then the kernel benchmark
# (experiments/bench/kernels.py, GPU shapes, bfloat16). Full logs go to $OUT/; the benchmark table comes last.
#
#   OUT=/tmp/gpu_check bash experiments/bench/gpu_check.sh      # < 6 min on an H200
#   QUICK=1 ...                                                  # float32 tests only, 1 shape per kernel
#
# Wheels: if .whl/ holds wheels (e.g. jax-triton for impl="triton"), they are installed into /tmp/site first
# (no network there; see the device README).
# Knobs (env): TEST_FILTER (pytest -k expression), QUICK, PYTHON, PYTEST_WORKERS (4), TEST_TIMEOUT (150 s), BENCH_BUDGET (130 s: no benchmark row
# starts later), BENCH_TIMEOUT (175 s: hard stop), BENCH_DTYPE (bfloat16), BENCH_EXTRA (more benchmark flags,
# e.g. "--quick" for a CPU dry run of this script).
set -u -o pipefail
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-$(command -v python || command -v python3)}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
start=$SECONDS
step() { printf '\n=== [%3d s] %s\n' $((SECONDS - start)) "$*"; }

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

step "GPU kernel tests (log: $OUT/gpu_tests.log)"
# No -x: in a one-shot run, one failing tolerance should not hide the other results; the timeout bounds cost.
test_args=(tests/pallas_kernels -q --run-gpu -m gpu -p no:cacheprovider -rfE --tb=short --durations=8
           --continue-on-collection-errors)
[ "$QUICK" = 1 ] && test_args+=(-k f32)
[ -n "${TEST_FILTER:-}" ] && test_args+=(-k "$TEST_FILTER")
if "$PY" -c "import xdist" 2>/dev/null; then test_args+=(-n "${PYTEST_WORKERS:-4}"); fi
XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -k 10 "${TEST_TIMEOUT:-150}" \
  "$PY" -m pytest "${test_args[@]}" 2>&1 | tee "$OUT/gpu_tests.log"
test_rc=$?

step "kernel benchmark (logs: $OUT/bench.log, tracebacks: $OUT/bench.stderr.log)"
bench_args=(--dtype "${BENCH_DTYPE:-bfloat16}" --json "$OUT/bench.json" --budget-s "${BENCH_BUDGET:-130}")
[ "$QUICK" = 1 ] && bench_args+=(--max-shapes 1 --target-s 0.2)
read -r -a extra <<< "${BENCH_EXTRA:-}"
bench_args+=(${extra[@]+"${extra[@]}"})
timeout -k 10 "${BENCH_TIMEOUT:-175}" "$PY" experiments/bench/kernels.py "${bench_args[@]}" \
  2>"$OUT/bench.stderr.log" | tee "$OUT/bench.log"
bench_rc=$?

step "summary"
echo "gpu tests: rc=$test_rc$([ "$test_rc" = 124 ] && echo ' (TIMED OUT)')"
grep -E '^(FAILED|ERROR)|[0-9]+ (passed|failed|skipped|error)' "$OUT/gpu_tests.log" | tail -n 20
echo "benchmark: rc=$bench_rc$([ "$bench_rc" = 124 ] && echo ' (TIMED OUT; table below is partial)')," \
  "$(grep -c '^=== .* failed ===' "$OUT/bench.stderr.log") row tracebacks in bench.stderr.log"
echo "total ${SECONDS}s"
echo
if [ -s "$OUT/bench.json" ]; then
  timeout -k 5 60 "$PY" experiments/bench/kernels.py --table-from "$OUT/bench.json" 2>>"$OUT/bench.stderr.log" \
    | tee "$OUT/table.txt"
else
  echo "no benchmark rows were written"
fi
