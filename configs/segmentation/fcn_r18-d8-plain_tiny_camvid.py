# FCN-D8 (plain stem) on real driving scenes: camvid_mini (CamVid, SegNet 11 classes, the
# Cityscapes-like task): ResNet-18-D8, BN, 192 px crops, a short schedule at batch 2.
_base_ = [
    './_base_/models/fcn_r18-d8-plain_tiny.py',
    './_base_/datasets/camvid_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    decode_head=dict(num_classes=11),
    auxiliary_head=dict(num_classes=11))
# CamVidDataset lives in dsc_mm.datasets.camvid.
custom_imports = dict(imports=['dsc_mm', 'dsc_mm.datasets.camvid'], allow_failed_imports=False)
