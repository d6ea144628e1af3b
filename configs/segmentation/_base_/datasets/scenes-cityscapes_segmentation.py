# The procedural scenes in Cityscapes layout (`tools/generate_scenes.py --out data/scenes`:
# leftImg8bit/ + gtFine/*_labelTrainIds.png, exact labels) at CPU size: mmseg's Cityscapes
# 769x769 pipeline scaled to 192 px crops (resize ratio 0.5-2.0).
# mmseg's CityscapesDataset only accepts subsets of the Cityscapes classes, so the base
# dataset class reads the same layout with the scenes' classes.
_base_ = ['./scenes_metainfo.py']

dataset_type = 'BaseSegDataset'
data_root = '{{$DSC_MM_SCENES:data/scenes}}/cityscapes/'
crop_size = (192, 192)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 256), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
scenes_cityscapes = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=_base_.scenes_metainfo,
    img_suffix='_leftImg8bit.png',
    seg_map_suffix='_gtFine_labelTrainIds.png')
# One process, no workers: on 2 cores worker processes cost more than they save.
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **scenes_cityscapes,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **scenes_cityscapes,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
