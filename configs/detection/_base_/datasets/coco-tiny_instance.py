# coco_tiny (50 train2017 + 50 val2017 images, original COCO instances) at CPU size: short
# side 224..288 for training (the protocol's multi-scale, scaled down), 256 for testing.
# Relative to the repository root; elsewhere override the dataset roots and the evaluator's
# ann_file, e.g. --cfg-options train_dataloader.dataset.data_root=/data/coco_tiny/ ...
_base_ = ['./tiny_detection.py']

dataset_type = 'CocoDataset'
data_root = '{{$DSC_MM_DATA:../shared/data}}/coco_tiny/'
# The shared pipelines, loading the instance masks too.
train_pipeline = [dict(t, with_mask=True) if t.type == 'LoadAnnotations' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, with_mask=True) if t.type == 'LoadAnnotations' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/instances_val2017.json',
    data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator
