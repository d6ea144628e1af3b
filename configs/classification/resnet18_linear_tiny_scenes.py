# CPU variant of resnet50_8xb32-linear-steplr-100e_in1k.py (mmpretrain's MoCo v2 linear
# evaluation) on the procedural scenes: ResNet-18 frozen (frozen_stages=4: every stage frozen,
# in eval mode), a linear head on global-average-pooled C5, image-level labels = the class of
# each scene's largest object (CocoMainObjectDataset; 6 classes, 160 train / 40 val images at
# 128 px). Deterministic resize (no augmentation): a probe of the features, not a training.
# SGD without weight decay as the recipe; lr 0.1 instead of 30 because the random and the
# briefly pretrained ResNet-18s give pooled C5 features of very different scales.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    'mmpretrain::_base_/default_runtime.py',
]
num_classes = 6
model = dict(
    backbone=dict(frozen_stages=4, init_cfg=None),
    head=dict(num_classes=num_classes, topk=(1, )))
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

data_root = '{{$DSC_MM_SCENES:data/scenes}}/coco/'
metainfo = dict(classes=('disk', 'square', 'triangle', 'star', 'ring', 'cross'))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CocoMainObjectDataset',
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix='train',
        metainfo=metainfo,
        pipeline=pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoMainObjectDataset',
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix='val',
        metainfo=metainfo,
        pipeline=pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 20
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))
param_scheduler = dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=max_epochs))
custom_imports = dict(
    imports=['dsc_mm', 'dsc_mm.datasets.coco_main_object'], allow_failed_imports=False)
