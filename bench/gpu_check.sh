#!/usr/bin/env bash
# One GPU check, at most ~8 minutes, to run at once when a GPU machine is lent (the device tool):
#   bash bench/gpu_check.sh            # from the repository root, after `make setup` (or with .venv carried)
# 1. the bundle's training workflow on CUDA with AMP (a short run of the shipped recipe's overlay);
# 2. inference: cir-monai register on a 1 mm held-out pair, --refine 0 and the default, timed;
# 3. per-pair refinement speed (steps per second) on CUDA;
# 4. the training workflow under torchrun with NCCL (multi_gpu_train.yaml), one process per GPU;
# and appends the numbers, with this command, to docs/benchmarks.md. On a machine without CUDA it says so and
# exits 2 before doing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "bench/gpu_check.sh needs a CUDA GPU (torch.cuda.is_available() is False here; run it on the device machine)" >&2
    exit 2
fi
export CIR_MONAI_DATA=${CIR_MONAI_DATA:-$PWD/data}
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.md"
BUNDLE_ARGS="--bundle_root bundle --meta_file bundle/configs/metadata.json --logging_file bundle/configs/logging.conf"
CONFIGS="['bundle/configs/train.yaml','configs/data/synth.yaml','configs/scale/cpu_lite_finetune.yaml']"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
: > "$LOG"
step() {  # step NAME COMMAND...: run, time, record rc and wall seconds
    local name=$1 start rc; shift
    start=$(date +%s.%N)
    set +e; "$@" > "$OUT/$name.log" 2>&1; rc=$?; set -e
    printf '| %s | %s | %.1f |\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $start" | bc)" >> "$LOG"
    tail -3 "$OUT/$name.log"
}
echo "| step | exit | wall s |" >> "$LOG"; echo "|---|---|---|" >> "$LOG"
# 1. training on CUDA with AMP: 200 level-3 iterations from the shipped model, validation at the end
step train_amp timeout 180 "$PY" -m monai.bundle run training --config_file "$CONFIGS" $BUNDLE_ARGS \
    --init_from bundle/models/model.pt --output_dir "$OUT/train" --amp True --train#trainer#iterations "[1,1,200]" \
    --val_interval 200 --train#trainer#bundle_model None
# 2. register a 1 mm held-out pair, network alone and refined (the first call builds the held-out data)
"$PY" -c "from cir_monai.data.heldout import prepare_heldout; prepare_heldout('$CIR_MONAI_DATA/heldout', 1, progress=False)"
PAIR=$CIR_MONAI_DATA/heldout/pair_000
for n in 0 50 200; do
    step "register_refine_$n" timeout 120 "$PY" -m cir_monai register "$PAIR/fixed.nii.gz" "$PAIR/moving.nii.gz" \
        --moving-label "$PAIR/moving_label.nii.gz" --refine "$n" --device cuda --out "$OUT/register_$n"
done
# 3. refinement speed on CUDA (steps per second at the shipped frame's size)
step refine_speed timeout 60 "$PY" - <<'PYEOF'
import time, torch
from cir_monai.refine import refine_ddf
m, f = torch.rand(1, 1, 80, 96, 80, device="cuda"), torch.rand(1, 1, 80, 96, 80, device="cuda")
d = torch.zeros(1, 3, 80, 96, 80, device="cuda")
refine_ddf(m, f, d, 1.0, 5); torch.cuda.synchronize()
t = time.perf_counter(); refine_ddf(m, f, d, 1.0, 200); torch.cuda.synchronize()
print(f"refinement: {200 / (time.perf_counter() - t):.0f} steps/s at 80x96x80")
PYEOF
grep -h "steps/s" "$OUT/refine_speed.log" >> "$LOG" || true
# 4. torchrun with NCCL, every GPU, 20 iterations
step torchrun_nccl timeout 150 "$PY" -m torch.distributed.run --nproc_per_node="$GPUS" -m monai.bundle run training \
    --config_file "['bundle/configs/train.yaml','configs/data/synth.yaml','configs/scale/cpu_lite_finetune.yaml','bundle/configs/multi_gpu_train.yaml']" \
    $BUNDLE_ARGS --init_from bundle/models/model.pt --output_dir "$OUT/ddp" --train#trainer#iterations "[1,1,20]" \
    --val_interval 1000 --train#trainer#bundle_model None
"$PY" - "$LOG" "$GPUS" <<'PYEOF'
import sys, torch
sys.path.insert(0, "bench")
from benchlog import append_table
log, gpus = sys.argv[1], sys.argv[2]
append_table("GPU check", "bench/gpu_check.sh", f"{torch.cuda.get_device_name(0)} x {gpus}", open(log).read())
PYEOF
cat "$LOG"
