# The procedural scenes in COCO layout (`tools/generate_scenes.py --out data/scenes`), at the
# same CPU sizes as coco_tiny.
_base_ = ['./coco-tiny_instance.py', './scenes_metainfo.py']

data_root = '{{$DSC_MM_SCENES:data/scenes}}/coco/'
scenes = dict(data_root=data_root, metainfo=_base_.scenes_metainfo)
train_dataloader = dict(dataset=dict(
    **scenes, ann_file='annotations/instances_train.json', data_prefix=dict(img='train/')))
val_dataloader = dict(dataset=dict(
    **scenes, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
