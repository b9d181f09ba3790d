#!/usr/bin/env bash
# Every GPU check of issue 6 in one run, for the device tool (one call: device time is scarce).
#
# Here, once (the wheels the device image lacks, for its Python 3.12): make gpu-wheels
# Then, with the device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
#
# Stages, each with its own time limit so that one slow stage cannot eat the others' figures; everything is
# logged to $OUT (the device tool brings it back):
#   1. the CUDA tests (bf16 autocast, channels_last) and the CPU/GPU agreement tests of the trainer;
#   2. the quality run: `datatools train sample_data` for at most 5 minutes, then mAP@0.5 on val;
#   3. benchmarks/bench_train.py: images/s against the torchvision reference recipe, and GPU utilization.
# Locally, GPU_CHECK_CPU=1 runs the same script on the CPU with tiny settings, to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/summary.txt"; }

if [ -d .whl ] && [ -z "${GPU_CHECK_CPU:-}" ]; then
    $PY -m pip install -q --no-deps .whl/*.whl 2>&1 | tail -2
fi
$PY - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", "bf16",
      torch.cuda.is_available() and torch.cuda.is_bf16_supported())
EOF

if [ -n "${GPU_CHECK_CPU:-}" ]; then
    DEV=cpu; EPOCHS=1; SIZE=64; BATCH=2; LIMIT="--limit 8"; TRAIN_S=120; BENCH="--iters 2 --warmup 1 --batch 2 --size 64 --workers 0 --limit 8"
else
    DEV=cuda; EPOCHS=${EPOCHS:-30}; SIZE=320; BATCH=16; LIMIT=""; TRAIN_S=300; BENCH="--iters 60 --batch 16 --size 512 --workers 8"
fi

log "1. CUDA tests"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_train.py -k "cuda or device" 2>&1 | tail -15 \
    | tee "$OUT/tests.txt"

log "2. quality run: train $EPOCHS epochs at $SIZE px on $DEV (limit ${TRAIN_S}s)"
start=$(date +%s)
timeout $TRAIN_S $PY -m datatools train sample_data --device $DEV --epochs $EPOCHS --image-size $SIZE -b $BATCH -j 8 \
    $LIMIT --out "$OUT/train" > "$OUT/train.txt" 2>&1
rc=$?
log "train exit $rc after $(( $(date +%s) - start )) s"
tail -n 4 "$OUT/train.txt" | tee -a "$OUT/summary.txt"
if [ -f "$OUT/train/results.csv" ]; then
    $PY - "$OUT/train/results.csv" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
best = max((r for r in rows if r.get("map50")), key=lambda r: float(r["map50"]), default=None)
print("epochs logged", len(rows), "| best mAP@0.5", best and best["map50"], "at epoch", best and best["epoch"],
      "| last row:", {k: rows[-1][k] for k in rows[-1] if k in ("epoch", "map50", "map", "images_per_s", "seconds", "memory_mb")})
EOF
fi

log "3. bench_train.py $BENCH"
timeout 200 $PY benchmarks/bench_train.py --device $DEV $BENCH > "$OUT/bench_train.txt" 2>&1
log "bench exit $?"
tail -n 12 "$OUT/bench_train.txt" | tee -a "$OUT/summary.txt"
rm -rf "$OUT/train/"*.pt  # checkpoints are too big to bring back
log "done"
