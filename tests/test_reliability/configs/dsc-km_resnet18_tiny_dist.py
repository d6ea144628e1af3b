# The reliability DSC-KM run made comparable across process counts: BN in eval mode (running
# statistics, so a sample's features do not depend on which samples share its process), fixed
# views (view 2 = horizontal flip of view 1), no shuffling, one iteration, one checkpoint. The
# FirstLossRecorderHook (tests/test_reliability/loss_recorder.py) saves every process's terms.
_base_ = './dsc-km_resnet18_tiny_reliability.py'

custom_imports = dict(imports=['dsc_mm', 'loss_recorder'], allow_failed_imports=False)
model = dict(backbone=dict(norm_eval=True))
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root='',
        pipeline=[
            dict(type='LoadImageRGB'),
            dict(type='MultiView', num_views=[1, 1],
                 transforms=[[dict(type='RandomFlip', prob=0.)],
                             [dict(type='RandomFlip', prob=1.)]]),
            dict(type='PackInputs'),
        ]))
max_iters = 1
param_scheduler = []
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=1))
custom_hooks = [dict(type='FirstLossRecorderHook')]
