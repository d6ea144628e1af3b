# mmpretrain's MoCo v2 on ResNet-18 on CPU.
_base_ = './_base_/tiny_cpu.py'

model = dict(
    type='MoCo',
    queue_len=64,  # see dsc-km_resnet18_tiny_scenes.py
    feat_dim=128,
    momentum=0.001,
    backbone=dict(type='ResNet', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=512, out_channels=128,
              with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2))
