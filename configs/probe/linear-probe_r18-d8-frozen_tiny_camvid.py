# Dense linear probe on camvid_mini (CamVid, SegNet 11 classes): frozen ResNet-18-D8 + linear
# 1x1 conv on C5. The pipeline is deterministic (the dataset's test pipeline: resize to short
# side 240, labels at full resolution) so FrozenEncoderDecoder computes each image's features
# once; 25 training images, 250 iterations = 10 epochs (after the first, an iteration costs
# the classifier only: 100 iterations left the random-init probe unconverged, std 2.3 mIoU
# over 3 seeds).
_base_ = [
    './_base_/models/linear-probe_r18-d8-frozen.py',
    '../segmentation/_base_/datasets/camvid_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_linear-probe_tiny-cpu.py',
]
model = dict(data_preprocessor=dict(size=_base_.crop_size), decode_head=dict(num_classes=11))
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=_base_.test_pipeline))
max_iters = 250
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_imports = dict(
    imports=['dsc_mm', 'dsc_mm.datasets.camvid', 'dsc_mm.probes'], allow_failed_imports=False)
