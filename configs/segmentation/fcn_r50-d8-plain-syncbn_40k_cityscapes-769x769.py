# Cityscapes semantic segmentation protocol of the SSL papers (DenseCL): FCN R50-D8 (plain
# stem), SyncBN, 769x769 crops, align_corners, 40k iterations at batch 8 (4 GPUs x 2), SGD
# lr 0.01 poly; sliding-window test (769 crops, stride 513); mIoU on val.
_base_ = [
    './_base_/models/fcn_r50-d8-plain-syncbn.py',
    'mmseg::_base_/datasets/cityscapes_769x769.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (769, 769)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(align_corners=True),
    auxiliary_head=dict(align_corners=True),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(513, 513)))

# lr 0.01 is for 8 images per step (the protocol's 4 GPUs x 2); tools/train.py refuses another
# total batch unless `--cfg-options auto_scale_lr.enable=True` rescales the lr linearly.
auto_scale_lr = dict(enable=False, base_batch_size=8)
