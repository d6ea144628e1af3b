# COCO detection + instance segmentation protocol of the SSL papers (MoCo, DenseCL; detectron2
# coco_R_50_FPN_1x): Mask R-CNN R50-FPN, SyncBN in backbone, FPN and heads, backbone not
# frozen, 1x = 12 epochs at batch 16 (8 GPUs x 2; ~90k iterations), lr 0.02, steps at 8/11.
# Reports bbox and segm AP (+AP50/AP75) on val2017.
_base_ = [
    './_base_/models/mask-rcnn_r50-fpn-syncbn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

# detectron2's multi-scale training (MIN_SIZE_TRAIN 640..800 step 32), test 800.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, short) for short in range(640, 801, 32)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))  # x 8 GPUs = 16

# lr 0.02 is for 16 images per step; `--cfg-options auto_scale_lr.enable=True` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)
