#!/usr/bin/env bash
# GPU readiness smoke test: one run, under 8 minutes on one H200 (an overall deadline that the
# script enforces), one summary table, exit status non-zero on any failure.
#
#   1. perf/pretrain_step.py at ResNet-50, batch 32, 224 px, --device cuda --amp (bf16)
#      --channels-last: DenseCL, DSC-KM, DSC-PM step time and memory ratios.
#   2. perf/semantic_scale.py --device cuda at simulated W = 64 and 256: the bounded contrast
#      set, k-means / Sinkhorn and the semantic loss on the device.
#   3. 30 iterations of the paper DSC-KM config with --amp (bf16) on generated scenes, its
#      epoch schedules shortened so the pixel and semantic terms start at step 5; every loss term
#      (instance, pixel, semantic) must be logged and finite (perf/smoke_checks.py).
#   4. One conversion of that checkpoint (tools/convert_checkpoint.py --to mmdet).
#   5. 20 iterations of each of the four protocol configs themselves (VOC07+12 Faster R-CNN
#      R50-C4, COCO Mask R-CNN R50-FPN, FCN R50-D8 VOC12aug and Cityscapes): their pipelines,
#      hooks and per-process batch unchanged, shortened only by --cfg-options (20 iterations,
#      20 precise-BN iterations, lr scaled to one process), one torchrun process (SyncBN), on
#      the scenes laid out as data/ by perf/protocol_data.py, validated at the end, from step
#      4's backbone.
#
# Usage (from the repository root): bash perf/gpu_smoke.sh [WORK_DIR]   (default work_dirs/gpu_smoke)
# Environment: PYTHON (default python); SMOKE_DEADLINE, the overall limit in seconds (default
# 470); SMOKE_STAGE_TIMEOUT, the most one stage may take (default 150). A stage gets the
# smaller of that and the time left; once the deadline has passed the remaining stages are
# marked "skipped (deadline)" and count as failures.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=${1:-work_dirs/gpu_smoke}
PYTHON=${PYTHON:-python}
DEADLINE=${SMOKE_DEADLINE:-470}
STAGE_TIMEOUT=${SMOKE_STAGE_TIMEOUT:-150}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHON
mkdir -p "$WORK/cfg"
WORK=$(cd "$WORK" && pwd)
SUMMARY="$WORK/summary.tsv"
: > "$SUMMARY"
START=$(date +%s)

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_smoke: no CUDA device is visible to $PYTHON; run this script on a GPU machine." >&2
    exit 2
fi

# record NAME RC SECONDS FIGURE: one row of the summary.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$SUMMARY"; }

# run NAME LOG COMMAND...: run one stage within the time left, record its exit status.
run() {
    local name=$1 log=$2
    shift 2
    local left=$(( START + DEADLINE - $(date +%s) ))
    if [ "$left" -lt 5 ]; then
        record "$name" 124 0 "skipped (deadline of ${DEADLINE} s reached)"
        return 124
    fi
    local limit=$(( left < STAGE_TIMEOUT ? left : STAGE_TIMEOUT ))
    local t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    [ $rc -eq 124 ] && echo "gpu_smoke: stage '$name' stopped after ${limit} s (time left)" >> "$log"
    record "$name" "$rc" "$(( $(date +%s) - t0 ))" "$log"
    [ $rc -eq 0 ] || { echo "gpu_smoke: stage '$name' failed (exit $rc); last lines of $log:" >&2; tail -n 15 "$log" >&2; }
    return $rc
}

# check NAME WORK_DIR [TERMS...]: the logged losses of a run (present, finite) as a stage.
check() {
    local name=$1 dir=$2
    shift 2
    local out
    out=$("$PYTHON" perf/smoke_checks.py "$dir" --require "$@" 2>&1)
    local rc=$?
    record "$name" "$rc" 0 "$out"
    [ $rc -eq 0 ] || echo "gpu_smoke: $out" >&2
}

# 1. Step benchmark (bf16 autocast and channels_last).
run "step ratios (R50, b32, 224, AMP bf16, channels-last)" "$WORK/pretrain_step.log" \
    "$PYTHON" perf/pretrain_step.py --device cuda --amp --channels-last --depth 50 --batch 32 \
    --size 224 --repeats 5 --warmup 3 --breakdown-rounds 0 --methods DenseCL DSC-KM DSC-PM

# 2. The bounded contrast set on the device.
run "bounded contrast set on cuda (W=64, 256)" "$WORK/semantic_scale.log" \
    "$PYTHON" perf/semantic_scale.py --device cuda --clock wall --world 64 256 --repeats 3

# 3. Generated scenes and 30 AMP iterations of the paper DSC-KM config.
SCENES="$WORK/scenes"
export DSC_MM_SCENES="$SCENES"  # read by the scenes dataset configs
[ -d "$SCENES/unlabeled" ] || run "generate scenes" "$WORK/scenes.log" \
    "$PYTHON" tools/generate_scenes.py --out "$SCENES" --workers 8
cat > "$WORK/cfg/dsc-km_r50_smoke.py" <<CFG
_base_ = '$ROOT/configs/pretrain/dsc-km_resnet50_8xb32-coslr-200e_in1k.py'
# 400 scenes / 32 = 12.5 steps per epoch: pixel term from step 5, semantic term after step 5.
model = dict(dense_start_epochs=0.4, semantic_ramp_epochs=(0.4, 1.2))
train_dataloader = dict(
    num_workers=8, sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='ImageFolderDataset', data_root='$SCENES',
                 folders=['unlabeled'], pipeline={{_base_.train_pipeline}}))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=30)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=30, by_epoch=False, begin=0, end=30)]
optim_wrapper = dict(dtype='bfloat16')  # with --amp: AmpOptimWrapper in bf16
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(by_epoch=False, interval=30, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
CFG
run "pretrain DSC-KM R50, 30 iters, AMP bf16" "$WORK/pretrain.log" \
    "$PYTHON" tools/train.py "$WORK/cfg/dsc-km_r50_smoke.py" --work-dir "$WORK/pretrain" --amp
check "pretrain: every loss term logged and finite" "$WORK/pretrain" \
    loss_instance loss_pixel loss_semantic

# 4. One conversion.
run "convert to mmdet" "$WORK/convert.log" \
    "$PYTHON" tools/convert_checkpoint.py "$WORK/pretrain/iter_30.pth" "$WORK/r50_dsc_mmdet.pth" \
    --to mmdet

# 5. The four protocol configs, 20 iterations each, from a folder whose data/ is the scenes.
PROTO="$WORK/protocols"
mkdir -p "$PROTO"
run "protocol data layout" "$WORK/protocol_data.log" \
    "$PYTHON" perf/protocol_data.py "$SCENES" "$PROTO/data"
SHORT="train_cfg.max_iters=20 auto_scale_lr.enable=True default_hooks.logger.interval=5"
PORT=29611
for config in detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py \
        detection/mask-rcnn_r50-fpn-syncbn_1x_coco.py \
        segmentation/fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py \
        segmentation/fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py; do
    name=$(basename "$config" .py)
    extra=""
    case "$config" in detection/*) extra="custom_hooks.0.num_iters=20" ;; esac
    export PORT=$((PORT + 1))  # tools/dist_train.sh's rendezvous port
    # shellcheck disable=SC2086  # SHORT and extra are lists of options
    run "$name, 20 iters" "$WORK/$name.log" \
        bash -c 'cd "$1" && shift && bash "$@"' _ "$PROTO" "$ROOT/tools/dist_train.sh" \
        "$ROOT/configs/$config" 1 --work-dir "$WORK/$name" --pretrained "$WORK/r50_dsc_mmdet.pth" \
        --cfg-options $SHORT $extra
    check "$name: loss logged and finite" "$WORK/$name"
done

# Summary.
echo
echo "| stage | exit | seconds | figure |"
echo "|---|---:|---:|---|"
while IFS=$'\t' read -r name rc secs detail; do
    case "$name" in
        step*) figure=$(grep -E '/DenseCL (time|memory) ratio' "$detail" | tr '\n' ';') ;;
        bounded*) figure=$(grep -E '^DSC-(KM|PM): W=' "$detail" | tr '\n' ';') ;;
        *) if [ -f "$detail" ]; then figure="-"; else figure=$detail; fi ;;  # a check's line
    esac
    echo "| $name | $rc | $secs | ${figure:--} |"
done < "$SUMMARY"
echo
echo "total $(( $(date +%s) - START )) s (deadline ${DEADLINE} s); logs and work dirs under $WORK"
awk -F'\t' '$2 != 0 {bad=1} END {exit bad}' "$SUMMARY"
