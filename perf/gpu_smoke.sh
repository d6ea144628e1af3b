#!/usr/bin/env bash
# GPU readiness smoke test: one script, about 8 minutes on one GPU, one summary table.
#
#   1. perf/pretrain_step.py at ResNet-50, batch 32, 224 px, --device cuda --amp
#      --channels-last: DenseCL, DSC-KM, DSC-PM step time and memory ratios.
#   2. 30 iterations of the paper DSC-KM config (configs/pretrain/dsc-km_resnet50_...) with
#      --amp on generated scenes (tools/generate_scenes.py), its schedules shortened so the
#      pixel and semantic terms start at iteration 5 (DSCScheduleHook resolves the epochs).
#   3. One conversion of that checkpoint (tools/convert_checkpoint.py --to mmdet).
#   4. 20 iterations of each of the four protocol models (Faster R-CNN R50-C4, Mask R-CNN
#      R50-FPN, FCN R50-D8 VOC and Cityscapes; SyncBN, so one torchrun process) on the
#      generated scenes, initialised from step 3's backbone.
#
# Usage (from the repository root): bash perf/gpu_smoke.sh [WORK_DIR]   (default work_dirs/gpu_smoke)
# Environment: PYTHON (default python), SMOKE_TIMEOUT per stage in seconds (default 200).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=${1:-work_dirs/gpu_smoke}
PYTHON=${PYTHON:-python}
STAGE_TIMEOUT=${SMOKE_TIMEOUT:-200}
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

# run NAME LOG COMMAND...: time one stage, record its exit status.
run() {
    local name=$1 log=$2
    shift 2
    local t0=$(date +%s)
    timeout "$STAGE_TIMEOUT" "$@" > "$log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$log" >> "$SUMMARY"
    [ $rc -eq 0 ] || { echo "gpu_smoke: stage '$name' failed (exit $rc); last lines of $log:" >&2; tail -n 15 "$log" >&2; }
    return $rc
}

# Last logged total loss of a training work dir (mmengine's vis_data/scalars.json).
last_loss() {
    "$PYTHON" - "$1" <<'PY'
import glob, json, sys
files = sorted(glob.glob(f'{sys.argv[1]}/*/vis_data/scalars.json'))
rows = [json.loads(l) for f in files[-1:] for l in open(f) if '"loss"' in l]
print(f"{rows[-1]['loss']:.3f}" if rows else '-')
PY
}

# 1. Step benchmark.
run "step benchmark (R50, b32, 224, AMP, channels-last)" "$WORK/pretrain_step.log" \
    "$PYTHON" perf/pretrain_step.py --device cuda --amp --channels-last --depth 50 --batch 32 \
    --size 224 --repeats 5 --warmup 3 --breakdown-rounds 0 --methods DenseCL DSC-KM DSC-PM

# 2. Generated scenes and 30 iterations of the paper DSC-KM config with AMP.
SCENES="$WORK/scenes"
export DSC_MM_SCENES="$SCENES"  # read by the scenes dataset configs
[ -d "$SCENES/unlabeled" ] || run "generate scenes" "$WORK/scenes.log" \
    "$PYTHON" tools/generate_scenes.py --out "$SCENES" --workers 8
cat > "$WORK/cfg/dsc-km_r50_smoke.py" <<CFG
_base_ = '$ROOT/configs/pretrain/dsc-km_resnet50_8xb32-coslr-200e_in1k.py'
# 400 scenes / 32 = 12.5 steps per epoch: pixel and semantic terms from step 5.
model = dict(dense_start_epochs=0.4, semantic_ramp_epochs=(0.4, 1.2))
train_dataloader = dict(
    num_workers=8, sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='ImageFolderDataset', data_root='$SCENES',
                 folders=['unlabeled'], pipeline={{_base_.train_pipeline}}))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=30)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=30, by_epoch=False, begin=0, end=30)]
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(by_epoch=False, interval=30, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
CFG
run "pretrain DSC-KM R50, 30 iters, AMP" "$WORK/pretrain.log" \
    "$PYTHON" tools/train.py "$WORK/cfg/dsc-km_r50_smoke.py" --work-dir "$WORK/pretrain" --amp

# 3. One conversion.
run "convert to mmdet" "$WORK/convert.log" \
    "$PYTHON" tools/convert_checkpoint.py "$WORK/pretrain/iter_30.pth" "$WORK/r50_dsc_mmdet.pth" \
    --to mmdet

# 4. The four protocol models, 20 iterations each on the generated scenes.
protocol_cfg() {  # NAME TASK MODEL_BASE DATA_BASE EXTRA
    cat > "$WORK/cfg/$1.py" <<CFG
_base_ = ['$ROOT/configs/$2/_base_/models/$3.py', '$ROOT/configs/$2/_base_/datasets/$4.py',
          $( [ "$2" = segmentation ] && echo "'mmseg::_base_/default_runtime.py'," )
          '$ROOT/configs/$2/_base_/schedules/schedule_tiny-cpu.py']
$5
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=20, val_interval=1000)
param_scheduler = []
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(by_epoch=False, interval=1000))
CFG
}
protocol_cfg faster-rcnn_r50-c4_smoke detection faster-rcnn_r50-c4-syncbn scenes-voc_detection \
    "model = dict(roi_head=dict(bbox_head=dict(num_classes=6)))"
protocol_cfg mask-rcnn_r50-fpn_smoke detection mask-rcnn_r50-fpn-syncbn scenes_instance \
    "model = dict(roi_head=dict(bbox_head=dict(num_classes=6), mask_head=dict(num_classes=6)))"
protocol_cfg fcn_r50-d8_voc_smoke segmentation fcn_r50-d8-plain-syncbn scenes-voc_segmentation \
    "model = dict(data_preprocessor=dict(size=_base_.crop_size), decode_head=dict(num_classes=7), auxiliary_head=dict(num_classes=7))"
protocol_cfg fcn_r50-d8_cityscapes_smoke segmentation fcn_r50-d8-plain-syncbn \
    scenes-cityscapes_segmentation \
    "model = dict(data_preprocessor=dict(size=_base_.crop_size), decode_head=dict(num_classes=7, align_corners=True), auxiliary_head=dict(num_classes=7, align_corners=True))"
PORT=29611
for name in faster-rcnn_r50-c4_smoke mask-rcnn_r50-fpn_smoke fcn_r50-d8_voc_smoke \
        fcn_r50-d8_cityscapes_smoke; do
    export PORT=$((PORT + 1))  # tools/dist_train.sh's rendezvous port
    run "$name, 20 iters" "$WORK/$name.log" \
        bash tools/dist_train.sh "$WORK/cfg/$name.py" 1 --work-dir "$WORK/$name" \
        --pretrained "$WORK/r50_dsc_mmdet.pth" --no-validate
done

# Summary.
echo
echo "| stage | exit | seconds | figure |"
echo "|---|---:|---:|---|"
while IFS=$'\t' read -r name rc secs log; do
    case "$name" in
        step*) figure=$(grep -E '/DenseCL (time|memory) ratio' "$log" | tr '\n' ';') ;;
        pretrain*) figure="last loss $(last_loss "$WORK/pretrain")" ;;
        *iters) figure="last loss $(last_loss "$WORK/${name%%,*}")" ;;
        *) figure="-" ;;
    esac
    echo "| $name | $rc | $secs | ${figure:--} |"
done < "$SUMMARY"
echo
echo "total $(( $(date +%s) - START )) s; logs and work dirs under $WORK"
awk -F'\t' '$2 != 0 {bad=1} END {exit bad}' "$SUMMARY"
