# CPU variant of faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py on real images: coco128_voc
# (COCO128 in VOC layout, 20 VOC classes): ResNet-18 C4, BN, 256 px, a short schedule at batch 2.
_base_ = [
    './_base_/models/faster-rcnn_r18-c4_tiny.py',
    './_base_/datasets/coco128-voc_detection.py',
    './_base_/schedules/schedule_tiny-cpu.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
