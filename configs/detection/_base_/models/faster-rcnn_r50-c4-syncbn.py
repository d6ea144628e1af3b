# Faster R-CNN R50-C4 in the self-supervised transfer protocol (MoCo / DenseCL, detectron2):
# mmdet's caffe-style C4 model turned torchvision-style, so a converted SSL backbone fits it.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py'

# SyncBN everywhere and nothing frozen: SSL features are not calibrated for frozen BN statistics.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # torchvision RGB statistics (the pretraining normalisation), not caffe's BGR mean.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        # detectron2's C4 backbone has no size divisibility: pad to the batch's largest image
        # only (mmdet's C4 base pads to a multiple of 32; only FPN needs that).
        pad_size_divisor=1),
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        # detectron2's init: the last BN of each block starts at 1, not 0 (mmdet's default
        # zero_init_residual=True), so the random-init rows start as the published baselines.
        zero_init_residual=False,
        # Random init (the baseline). `tools/train.py CONFIG --pretrained PATH` sets
        # init_cfg=dict(type='Pretrained', checkpoint=PATH) here and in the shared head.
        init_cfg=None),
    roi_head=dict(
        # res5 as RoI head with an extra norm after it (MoCo's Res5ROIHeadsExtraNorm).
        shared_head=dict(
            type='ResLayerExtraNorm',
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            init_cfg=None)))

custom_imports = dict(
    imports=['dsc_mm', 'mmpretrain.models.utils.res_layer_extra_norm'],
    allow_failed_imports=False)
