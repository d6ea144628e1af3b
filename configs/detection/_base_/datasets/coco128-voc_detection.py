# coco128_voc (COCO128 images, COCO labels mapped to the 20 VOC classes, VOC2012 layout:
# 73 train / 24 val) at CPU size: short side 224..288 for training, 256 for testing.
# Relative to the repository root; override both dataloaders' data_root elsewhere.
_base_ = ['./tiny_detection.py']

dataset_type = 'VOCDataset'
data_root = '{{$DSC_MM_DATA:../shared/data}}/coco128_voc/VOCdevkit/'
# Trains on "difficult" boxes as detectron2 does; VOCMetric still ignores them.
train_dataloader = dict(dataset=dict(
    type='VOCTrainDifficultDataset', data_root=data_root,
    ann_file='VOC2012/ImageSets/Main/train.txt', data_prefix=dict(sub_data_root='VOC2012/')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='VOC2012/ImageSets/Main/val.txt',
    data_prefix=dict(sub_data_root='VOC2012/')))
test_dataloader = val_dataloader

# The protocol's metric: 11-point AP at IoU 0.50:0.05:0.95 (mAP) with AP50/AP75.
val_evaluator = dict(
    type='VOCMetric',
    metric='mAP',
    eval_mode='11points',
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator
