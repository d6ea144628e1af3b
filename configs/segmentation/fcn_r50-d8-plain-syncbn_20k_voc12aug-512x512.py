# VOC12aug semantic segmentation protocol of the SSL papers (DenseCL): FCN R50-D8 (plain
# stem), SyncBN, 512x512 crops (resize ratio 0.5-2.0), 20k iterations at batch 16 (4 GPUs x 4),
# SGD lr 0.01 momentum 0.9 wd 5e-4, poly (power 0.9) to 1e-4; mIoU on VOC12 val.
_base_ = [
    './_base_/models/fcn_r50-d8-plain-syncbn.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))

# lr 0.01 is for 16 images per step (the protocol's 4 GPUs x 4); tools/train.py refuses another
# total batch unless `--cfg-options auto_scale_lr.enable=True` rescales the lr linearly.
auto_scale_lr = dict(enable=False, base_batch_size=16)
