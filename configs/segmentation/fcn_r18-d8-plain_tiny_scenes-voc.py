# CPU variant of fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py on the procedural scenes
# (VOC SegmentationClass): ResNet-18-D8, BN, 192 px crops, a short schedule at batch 2.
_base_ = [
    './_base_/models/fcn_r18-d8-plain_tiny.py',
    './_base_/datasets/scenes-voc_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    decode_head=dict(num_classes=7),
    auxiliary_head=dict(num_classes=7))
