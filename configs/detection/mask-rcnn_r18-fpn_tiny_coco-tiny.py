# CPU variant of mask-rcnn_r50-fpn-syncbn_1x_coco.py on real images: coco_tiny (COCO 2017
# instances, 80 classes): ResNet-18 FPN, BN, 256 px, a short schedule at batch 2.
_base_ = [
    './_base_/models/mask-rcnn_r18-fpn_tiny.py',
    './_base_/datasets/coco-tiny_instance.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
