# The dense linear probe's schedule on CPU: SGD on the classifier alone (the backbone is
# frozen), no weight decay as in MoCo's linear evaluation, poly decay, one image per batch
# (the probe pipeline keeps each image's aspect ratio). Validation and a checkpoint at the end.
_base_ = '../../../segmentation/_base_/schedules/schedule_tiny-cpu.py'

max_iters = 100
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
