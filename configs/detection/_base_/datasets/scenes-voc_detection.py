# The procedural scenes in VOC2012 layout (`tools/generate_scenes.py --out data/scenes`), at
# the same CPU sizes as coco128_voc.
_base_ = ['./coco128-voc_detection.py', './scenes_metainfo.py']

data_root = '{{$DSC_MM_SCENES:data/scenes}}/VOCdevkit/'
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=_base_.scenes_metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=_base_.scenes_metainfo))
test_dataloader = val_dataloader
