# The tiny DSC-KM pretraining of configs/pretrain, shrunk for the reliability tests: a
# quarter-width ResNet-18 (C5 has 128 channels), 64 px MoCo v2 views (2x2 C5 grid), batch 4,
# queues of 64, every loss term on from the first step, deterministic CPU settings, data in
# the main process (num_workers=0) so augmentations share the process's generators with the
# model. Set train_dataloader.dataset.data_root with --cfg-options.
_base_ = '../../../configs/pretrain/dsc-km_resnet18_tiny_scenes.py'

crop_size = 64
model = dict(
    queue_len=64,
    dense_start_iters=0,
    semantic_ramp=(0, 0),  # beta > 0 from step 0 (a term with weight 0 is not computed)
    backbone=dict(stem_channels=16, base_channels=16),
    neck=dict(in_channels=128, hid_channels=32),
    pixel_head=dict(cross_view_topk=2),  # 2 of 4 locations
    semantic_head=dict(num_classes=4, num_iters=3))  # pool of 4 images x 4 = 16 pixels

view_pipeline = [
    dict(type='RandomResizedCrop', scale=crop_size, crop_ratio_range=(0.2, 1.),
         backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                          hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=[
        dict(type='LoadImageRGB'),
        dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
        dict(type='PackInputs'),
    ]))

max_iters = 10
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=-1))
randomness = dict(seed=0, deterministic=True)
