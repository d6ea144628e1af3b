# A short iteration-based schedule for the CPU variants (batch 2, one process): the
# protocol's SGD with poly decay, scaled down. Validation and a checkpoint at the end.
max_iters = 200
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Bit-identical runs for a given seed (dsc_mm/apis/determinism.py, docs/demo.md): seeded
# workers and augmentations, deterministic kernels, one thread count and one instruction set
# (both change float summation order), whatever the machine.
randomness = dict(seed=0, deterministic=True)
cpu_numerics = dict(threads=2, isa='avx2')
