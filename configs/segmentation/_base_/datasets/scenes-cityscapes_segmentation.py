# The procedural scenes in Cityscapes layout (`tools/generate_scenes.py --out data/scenes`:
# leftImg8bit/ + gtFine/*_labelTrainIds.png, exact labels) at CPU size: mmseg's Cityscapes
# 769x769 pipeline scaled to 192 px crops (resize ratio 0.5-2.0).
# mmseg's CityscapesDataset only accepts subsets of the Cityscapes classes, so the base
# dataset class reads the same layout with the scenes' classes.
_base_ = ['./tiny_segmentation.py', './scenes_metainfo.py']

dataset_type = 'BaseSegDataset'
data_root = '{{$DSC_MM_SCENES:data/scenes}}/cityscapes/'
scale = (512, 256)
# The shared pipelines at this dataset's scale (the resize steps are the ones with a scale).
train_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.test_pipeline]
scenes_cityscapes = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=_base_.scenes_metainfo,
    img_suffix='_leftImg8bit.png',
    seg_map_suffix='_gtFine_labelTrainIds.png')
train_dataloader = dict(
    dataset=dict(
        **scenes_cityscapes,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        **scenes_cityscapes,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
