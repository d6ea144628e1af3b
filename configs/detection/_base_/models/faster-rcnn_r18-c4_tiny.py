# The protocol's Faster R-CNN C4 shrunk for CPU: ResNet-18, plain BN (one process), fewer
# proposals and sampled RoIs. Every sampled RoI runs through res5 (the shared head), so the RoI
# count sets the cost (R50: 26 s per iteration with the default 512 RoIs, 3.5 s with 64).
_base_ = './faster-rcnn_r50-c4-syncbn.py'

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    rpn_head=dict(in_channels=256, feat_channels=256),
    roi_head=dict(
        shared_head=dict(depth=18, norm_cfg=norm_cfg),
        bbox_roi_extractor=dict(out_channels=256),
        bbox_head=dict(in_channels=512)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    # Every test proposal runs through res5: fewer of them (the CPU sets have < 25 objects).
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=100)))
