# CPU variant of fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py on the procedural scenes
# (Cityscapes layout): ResNet-18-D8, BN, 192 px crops, align_corners, sliding-window test
# (192 crops, stride 128 = the protocol's 769/513 ratio), a short schedule at batch 2.
_base_ = [
    './_base_/models/fcn_r18-d8-plain_tiny.py',
    './_base_/datasets/scenes-cityscapes_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    decode_head=dict(num_classes=7, align_corners=True),
    auxiliary_head=dict(num_classes=7, align_corners=True),
    test_cfg=dict(mode='slide', crop_size=_base_.crop_size, stride=(128, 128)))
