# Dense linear probe on the procedural scenes (VOC SegmentationClass, 7 classes): frozen
# ResNet-18-D8 + linear 1x1 conv on C5. Deterministic pipeline (the dataset's test pipeline:
# 256 -> 192 px, labels at full resolution), so each image's features are computed once;
# 160 training images.
_base_ = [
    './_base_/models/linear-probe_r18-d8-frozen.py',
    '../segmentation/_base_/datasets/scenes-voc_segmentation.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/schedule_linear-probe_tiny-cpu.py',
]
model = dict(data_preprocessor=dict(size=_base_.crop_size), decode_head=dict(num_classes=7))
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=_base_.test_pipeline))
