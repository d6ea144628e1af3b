# The protocol's Mask R-CNN FPN shrunk for CPU: ResNet-18, plain BN (one process), 128-channel
# FPN and heads (at 256 channels the P2 convolutions and the 4-conv heads cost ~4x more; they
# are trained from scratch in every run, so their width does not touch the transfer), fewer
# proposals and sampled RoIs.
_base_ = './mask-rcnn_r50-fpn-syncbn.py'

norm_cfg = dict(type='BN', requires_grad=True)
width = 128
model = dict(
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(
            in_channels=width, conv_out_channels=width, fc_out_channels=512, norm_cfg=norm_cfg),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, norm_cfg=norm_cfg)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    # The 4conv1fc box head and the mask head dominate CPU inference: fewer RoIs at test time.
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=100),
        rcnn=dict(max_per_img=20)))
