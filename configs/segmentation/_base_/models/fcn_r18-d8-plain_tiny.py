# The protocol's FCN-D8 (plain stem) shrunk for CPU: ResNet-18 with mmseg's R18 head widths
# (as mmseg's fcn_r18-d8), plain BN (one process).
_base_ = './fcn_r50-d8-plain-syncbn.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, channels=128, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, norm_cfg=norm_cfg))
