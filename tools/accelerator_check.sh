#!/usr/bin/env bash
# One prepared check for a GPU (or TPU) machine, well under 10 minutes:
#   1. the tests whose numerics depend on the backend (blind spot, losses, linalg, bf16,
#      stage-1/2 training, inference);
#   2. stage-1 and stage-2 train-step throughput at the reference size (D-BSN 96 features
#      8+8 MDC, 96x96 patches, 8 per device; MWCNN (160, 256, 256), 160x160, 32 per device)
#      in float32 and bfloat16;
#   3. inference images/s at 320x480 and 1024x1024 (stage 1: D-BSN + Bayes; stage 2: MWCNN);
#   4. peak device memory of each (device.memory_stats()), all printed as one table.
#
#   bash tools/accelerator_check.sh            # on the accelerator machine
#   TINY=1 bash tools/accelerator_check.sh     # seconds-scale smoke run on a CPU
# Rows also go to $OUT/rows.jsonl and the table to $OUT/table.md (OUT defaults to a new
# temporary folder). Exit status: that of the tests (the benchmarks run regardless).
set -uo pipefail
cd "$(dirname "$0")/.."
TINY=${TINY:-0}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
rm -f "$OUT/rows.jsonl"
# Each process allocates what it needs, so the per-section memory peaks are its own.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ "$TINY" = 1 ]; then
  SIZE=tiny STEPS=2 SIZES=64x96,128x128
  TESTS=(tests/train/test_precision.py::test_unknown_dtype_is_refused)
else
  SIZE=reference STEPS=5 SIZES=320x480,1024x1024
  TESTS=(tests/models/test_dbsn.py tests/test_losses.py tests/test_linalg.py
         tests/train/test_precision.py tests/train/test_stage1.py tests/test_inference.py)
fi
start=$(date +%s)
python -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())"

echo "== tests: ${TESTS[*]}"
timeout 300 python -m pytest -q -x -p no:cacheprovider "${TESTS[@]}" 2>&1 | tail -n 15
tests_rc=${PIPESTATUS[0]}
echo "tests exit status $tests_rc ($(( $(date +%s) - start )) s so far)"

run() {  # One section per process: its memory peak is its own.
  timeout 240 python tools/scale_bench.py --size="$SIZE" --steps="$STEPS" \
    --infer_sizes="$SIZES" --out="$OUT/rows.jsonl" "$@" 2>&1 | grep '^{' \
    || echo "FAILED: scale_bench $*"
}
echo "== benchmarks ($SIZE)"
for dtype in float32 bfloat16; do
  run --section=train1 --dtype=$dtype
  run --section=train2 --dtype=$dtype
done
run --section=infer1
run --section=infer2

echo "== table (s / step: median of $STEPS; rate: patches or images per second)"
python tools/scale_bench.py --table="$OUT/rows.jsonl" | tee "$OUT/table.md"
echo "total $(( $(date +%s) - start )) s; rows in $OUT"
exit "$tests_rc"
