# The procedural scenes' VOC SegmentationClass (`tools/generate_scenes.py --out data/scenes`;
# 255 = ignore band around objects, as VOC), at the same CPU sizes as coco128_voc.
# mmseg's PascalVOCDataset only accepts subsets of the VOC classes, so the base dataset class
# reads the same layout with the scenes' classes.
_base_ = ['./coco128-voc_segmentation.py', './scenes_metainfo.py']

data_root = '{{$DSC_MM_SCENES:data/scenes}}/VOCdevkit/VOC2012'
train_dataloader = dict(
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=_base_.scenes_metainfo))
val_dataloader = dict(
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=_base_.scenes_metainfo))
test_dataloader = val_dataloader
