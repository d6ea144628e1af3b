# VOC07+12 detection protocol of the SSL papers (MoCo, DenseCL; detectron2
# pascal_voc_R_50_C4_24k): Faster R-CNN R50-C4, SyncBN, backbone not frozen, 24k iterations
# at batch 16 (8 GPUs x 2), multi-scale train 480..800, test 800, COCO-style AP on VOC07 test;
# detectron2's habits: no weight decay on norm layers, precise BN before evaluation, difficult
# boxes trained on. The papers report the average of 5 runs (seeds): `--cfg-options
# randomness.seed=N` (tools/benchmark.py --suite paper runs the 5).
_base_ = [
    './_base_/models/faster-rcnn_r50-c4-syncbn.py',
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))

# Short side 480..800 in steps of 32 (detectron2 MIN_SIZE_TRAIN), long side <= 1333.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, short) for short in range(480, 801, 32)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

data_root = 'data/VOCdevkit/'
voc_trainval = dict(
    # detectron2's VOC loader trains on "difficult" boxes; VOCMetric still ignores them.
    type='VOCTrainDifficultDataset',
    data_root=data_root,
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        # An iteration-based schedule: no RepeatDataset (mmdet's epoch-based VOC base has one).
        _delete_=True,
        type='ConcatDataset',
        # VOCDataset stores 'VOC2007'/'VOC2012' in its metainfo; unless that key is ignored,
        # ConcatDataset's metainfo becomes a list of two dicts (mmdet's C4 VOC recipe).
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                **voc_trainval,
                ann_file='VOC2007/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2007/')),
            dict(
                **voc_trainval,
                ann_file='VOC2012/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2012/')),
        ]))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# detectron2's PascalVOCDetectionEvaluator: VOC07 11-point AP at IoU 0.50:0.05:0.95; mmdet's
# VOCMetric reports their mean as `mAP` (= the papers' AP) and each threshold as AP50..AP95.
val_evaluator = dict(
    type='VOCMetric',
    metric='mAP',
    eval_mode='11points',
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator

max_iters = 24000
# Evaluate once, at the end, as detectron2's protocol does (VOC07 test is 4952 images).
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[18000, 22000],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    # detectron2's SOLVER.WEIGHT_DECAY_NORM = 0: no decay on BN/SyncBN weights and biases.
    paramwise_cfg=dict(norm_decay_mult=0.))
# lr 0.02 is for 16 images per step; `--cfg-options auto_scale_lr.enable=True` rescales it
# linearly for another total batch (e.g. 1 GPU x 2 -> 0.0025).
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=2))
# detectron2's TEST.PRECISE_BN (on in MoCo's and DenseCL's configs): BN statistics recomputed
# over 200 training batches (of the total batch 16) before the evaluation.
custom_hooks = [dict(type='PreciseBNBeforeEvalHook', num_iters=200)]
log_processor = dict(by_epoch=False)
