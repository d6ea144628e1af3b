# A short iteration-based schedule for the CPU variants (batch 2, one process): the protocol's
# SGD with linear warm-up and two lr steps, scaled down. Validation and a checkpoint at the end.
# An R18 detector iteration costs 2.5-4 s on 2 CPU cores: 100 iterations are a few minutes.
_base_ = 'mmdet::_base_/default_runtime.py'

max_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=10),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[75, 90],
        gamma=0.1)
]
# lr 0.01 at batch 2: above the linear-scaling 0.0025 (0.02 x 2/16) so that a short run learns;
# the warm-up and BN keep it stable.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
    paramwise_cfg=dict(norm_decay_mult=0.))  # the protocol's (detectron2's) no decay on norms
# No precise BN here (the protocol's PreciseBNBeforeEvalHook): its 200 extra forward passes
# would cost more CPU time than the whole short schedule.

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
# Bit-identical runs for a given seed (dsc_mm/apis/determinism.py, docs/demo.md): seeded
# workers and augmentations, deterministic kernels, one thread count and one instruction set
# (both change float summation order), whatever the machine.
randomness = dict(seed=0, deterministic=True)
cpu_numerics = dict(threads=2, isa='avx2')
