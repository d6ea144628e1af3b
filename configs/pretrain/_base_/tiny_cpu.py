# Shared settings of the tiny CPU pretraining variants (`*_tiny_*.py`): MoCo v2 views at 96 px
# (3x3 C5 grid), batch 8 on one process, 300 iterations (DSC-KM: about 10 min on 2 CPU cores
# shared with other jobs, docs/pretrain.md), checkpoint every 100. Variants only add the model
# (and the real-image variants only the dataset).
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)

crop_size = 96
# LoadImageRGB returns BGR like mmcv's loader (it also reads CMYK/16-bit files), so the MoCo v2
# pipeline and the RGB flip of the preprocessor are mmpretrain's, unchanged.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# MoCo v2 augmentations (mmpretrain's imagenet_bs32_mocov2.py) at crop_size.
view_pipeline = [
    dict(type='RandomResizedCrop', scale=crop_size, crop_ratio_range=(0.2, 1.),
         backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
                          hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),  # BGR order
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    drop_last=True,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='{{$DSC_MM_SCENES:data/scenes}}',  # tools/generate_scenes.py --out data/scenes
        folders=['unlabeled'],
        pipeline=train_pipeline))

max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03, weight_decay=1e-4, momentum=0.9))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, max_keep_ckpts=3))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # CPU processes (tools/dist_train.sh)
# Bit-identical runs for a given seed (dsc_mm/apis/determinism.py, docs/demo.md): seeded
# workers and augmentations, deterministic kernels, one thread count and one instruction set
# (both change float summation order), whatever the machine.
randomness = dict(seed=0, deterministic=True)
cpu_numerics = dict(threads=2, isa='avx2')

# The `*_tiny_real.py` variants train on the real mini datasets as one unlabeled set of 269
# images (100 COCO + 128 VOC-layout + 41 CamVid), never their label folders.
# Root: $DSC_MM_DATA when set, else ../shared/data (relative to the repository root).
real_data_root = '{{$DSC_MM_DATA:../shared/data}}'
real_folders = [
    'coco_tiny/train2017',
    'coco_tiny/val2017',
    'coco128_voc/VOCdevkit/VOC2012/JPEGImages',
    'camvid_mini/train',
    'camvid_mini/val',
    'camvid_mini/test',
]
