#!/usr/bin/env bash
# Reproduce the paper's synthetic-noise tables (SPEC section 9): for every row of
# configs/paper/table.py, train both stages with dbsn-pipeline, score them with dbsn-eval
# (stage 1, stage 2, noisy input, BM3D when installed), then print one Markdown table
# beside the paper's numbers (also RUNS/table.md).
#
#   tools/reproduce_paper.sh                    # paper scale: ~10 accelerator-hours a row
#   SMOKE=1 tools/reproduce_paper.sh            # a few steps a row, 2 cropped test images
#   ROWS="gray_awgn25 color_mg" RUNS=/data/runs tools/reproduce_paper.sh
#
# Every step resumes: rerun the same command after an interruption. EXTRA_ARGS is passed
# to dbsn-pipeline (e.g. EXTRA_ARGS="--config.stage1.data.batch_size=16").
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/paper}
SMOKE=${SMOKE:-0}
TABLE=configs/paper/table.py
ROWS=${ROWS:-$(python "$TABLE" rows | cut -d' ' -f1)}
PY=${PYTHON:-python}

pipeline_args=()
eval_args=()
if [[ "$SMOKE" == 1 ]]; then
  RUNS=${RUNS%/}-smoke
  # Tiny networks and a handful of steps: checks the whole chain, not the numbers.
  pipeline_args=(
    --config.stage1.model.features=8 "--config.stage1.model.blocks=(1,1)"
    --config.stage1.data.patch_size=32 --config.stage1.data.batch_size=2
    --config.stage1.train.num_steps=3 --config.stage1.train.checkpoint_every=3
    --config.stage1.eval.stop=1 --config.stage1.eval.crop=64
    "--config.stage2.denoiser.widths=(8,8,8)" --config.stage2.data.patch_size=32
    --config.stage2.data.batch_size=8 --config.stage2.data.target_margin=8
    --config.stage2.train.num_steps=2 --config.stage2.train.checkpoint_every=2)
  eval_args=(--stop=2 --crop=64 --grid_images=1)
fi
for row in $ROWS; do
  line=$($PY "$TABLE" rows | grep "^$row " || true)
  if [[ -z "$line" ]]; then
    echo "error: unknown row '$row'; rows: $($PY "$TABLE" rows | cut -d' ' -f1 | xargs)" >&2
    exit 2
  fi
  read -r _ sets noise <<< "$line"
  wd="$RUNS/$row"
  mkdir -p "$wd"
  echo "== $row: train (workdir $wd)" >&2
  $PY -m dbsn_jax.cli.pipeline --config="$TABLE:$row" --workdir="$wd" \
    "${pipeline_args[@]}" ${EXTRA_ARGS:-}
  echo "== $row: evaluate on $sets, noise $noise" >&2
  $PY -m dbsn_jax.cli.eval --models="stage 1=$wd/stage1,stage 2=$wd/stage2" \
    --sets="$sets" --noise="$noise" --output_dir="$wd/eval" "${eval_args[@]}"
done
$PY "$TABLE" collect "$RUNS" | tee "$RUNS/table.md"
