# A tiny mmpretrain DenseCL run on a folder of images, used by the foundation tests
# (Runner round trip, torchrun with gloo). Set data_root with --cfg-options.
_base_ = 'mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py'

custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)

model = dict(
    queue_len=64,
    backbone=dict(depth=18),
    neck=dict(in_channels=512, hid_channels=64, out_channels=32),
    feat_dim=32)
find_unused_parameters = False

view_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.), backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
            dict(type='PackInputs'),
        ]))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, by_epoch=False, begin=0, end=4)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, by_epoch=False, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)
