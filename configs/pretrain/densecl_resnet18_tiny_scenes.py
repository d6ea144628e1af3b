# mmpretrain's DenseCL on ResNet-18 on CPU, with its warm-up hook scaled to 300 iterations.
_base_ = './_base_/tiny_cpu.py'

model = dict(
    type='DenseCL',
    queue_len=64,  # see dsc-km_resnet18_tiny_scenes.py
    feat_dim=128,
    momentum=0.001,
    loss_lambda=0.5,
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='DenseCLNeck', in_channels=512, hid_channels=512, out_channels=128,
              num_grid=None),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2))
find_unused_parameters = True
custom_hooks = [dict(type='DenseCLHook', start_iters=30)]
