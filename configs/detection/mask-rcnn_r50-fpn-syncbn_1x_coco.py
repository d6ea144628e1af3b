# COCO detection + instance segmentation protocol of the SSL papers (MoCo, DenseCL; detectron2
# coco_R_50_FPN_1x): Mask R-CNN R50-FPN, SyncBN in backbone, FPN and heads, backbone not
# frozen, detectron2's 1x: 90k iterations at batch 16 (8 GPUs x 2), lr 0.02, linear warm-up
# over 1000 iterations from 0.001 x lr, steps at 60k/80k; no weight decay on norm layers,
# precise BN before the evaluation. Reports bbox and segm AP (+AP50/AP75) on val2017.
_base_ = [
    './_base_/models/mask-rcnn_r50-fpn-syncbn.py',
    'mmdet::_base_/datasets/coco_instance.py',
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
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    # Iteration-based, as detectron2: an endless shuffled stream instead of epochs.
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))

# detectron2's 1x is 90k iterations, not mmdet's 12 epochs (~87.9k iterations, steps at
# epochs 8/11, warm-up 500). Evaluate once, at the end (detectron2's TEST.EVAL_PERIOD 0).
max_iters = 90000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[60000, 80000],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    # detectron2's SOLVER.WEIGHT_DECAY_NORM = 0: no decay on BN/SyncBN weights and biases.
    paramwise_cfg=dict(norm_decay_mult=0.))
# lr 0.02 is for 16 images per step; `--cfg-options auto_scale_lr.enable=True` rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# detectron2's CHECKPOINT_PERIOD 5000.
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
# detectron2's TEST.PRECISE_BN (on in DenseCL's R_50_FPN_1x): BN statistics recomputed over
# 200 training batches (of the total batch 16) before the evaluation.
custom_hooks = [dict(type='PreciseBNBeforeEvalHook', num_iters=200)]
