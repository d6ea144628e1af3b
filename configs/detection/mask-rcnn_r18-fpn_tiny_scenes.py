# CPU variant of mask-rcnn_r50-fpn-syncbn_1x_coco.py on the procedural scenes (COCO layout):
# ResNet-18 FPN, BN, 256 px, a short schedule at batch 2.
_base_ = [
    './_base_/models/mask-rcnn_r18-fpn_tiny.py',
    './_base_/datasets/scenes_instance.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=6), mask_head=dict(num_classes=6)))
