# DSC-KM, DenseCL's ImageNet recipe: 200 epochs, 8 GPUs x 32, SGD 0.03, cosine to 0.
_base_ = [
    './_base_/models/dsc-km_resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_mocov2.py',
    'mmpretrain::_base_/schedules/imagenet_sgd_coslr_200e.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)

# Schedules in epochs, turned into optimizer steps at run start (DSCScheduleHook), so they mean
# the same at 8 and 256 GPUs: DenseCL's warm-up of 10,000 iterations at batch 256 (author:
# DenseCLWarmupHook start_iters=10000) is 2 epochs of ImageNet; beta ramps over epochs 2-4.
model = dict(dense_start_epochs=2, semantic_ramp_epochs=(2, 4))

# only keeps the latest 3 checkpoints
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))

# NOTE: `auto_scale_lr` is for automatically scaling LR based on the actual training batch size.
auto_scale_lr = dict(base_batch_size=256)
