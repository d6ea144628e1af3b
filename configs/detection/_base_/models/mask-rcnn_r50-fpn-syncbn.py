# Mask R-CNN R50-FPN in the self-supervised transfer protocol (MoCo / DenseCL, detectron2):
# SyncBN in the backbone, FPN, 4conv1fc box head and mask head; torchvision RGB statistics
# (already mmdet's default for this model).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        # detectron2's init: the last BN of each block starts at 1, not 0 (mmdet's default
        # zero_init_residual=True), so the random-init rows start as the published baselines.
        zero_init_residual=False,
        # Random init (the baseline). `tools/train.py CONFIG --pretrained PATH` sets
        # init_cfg=dict(type='Pretrained', checkpoint=PATH).
        init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

custom_imports = dict(imports=['dsc_mm'], allow_failed_imports=False)
