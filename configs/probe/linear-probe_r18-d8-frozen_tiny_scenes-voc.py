# Dense linear probe on the procedural scenes (VOC SegmentationClass, 7 classes): frozen
# ResNet-18-D8 + linear 1x1 conv on C5. Deterministic pipeline (the dataset's test pipeline:
# 256 -> 192 px, labels at full resolution), so each image's features are computed once;
# 160 training images, 400 iterations = 2.5 epochs (after the first, an iteration costs the
# classifier only). At 100 iterations the classifier barely left "background" and random init's
# probe scattered by 0.7 mIoU over 3 seeds, as large as the gaps between rows (docs/demo.md).
_base_ = [
    './_base_/models/linear-probe_r18-d8-frozen.py',
    '../segmentation/_base_/datasets/scenes-voc_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_linear-probe_tiny-cpu.py',
]
model = dict(data_preprocessor=dict(size=_base_.crop_size), decode_head=dict(num_classes=7))
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=_base_.test_pipeline))
max_iters = 400
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
