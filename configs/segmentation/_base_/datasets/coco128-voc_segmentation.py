# coco128_voc segmentation (COCO128 images, COCO masks mapped to background + 20 VOC classes,
# VOC2012 layout: 73 train / 24 val) at CPU size: mmseg's VOC pipeline scaled from 512 to
# 192 px crops (resize ratio 0.5-2.0). Relative to the repository root; override both
# dataloaders' data_root elsewhere.
_base_ = ['./tiny_segmentation.py']

dataset_type = 'PascalVOCDataset'
data_root = '{{$DSC_MM_DATA:../shared/data}}/coco128_voc/VOCdevkit/VOC2012'
scale = (768, 192)
# The shared pipelines at this dataset's scale (the resize steps are the ones with a scale).
train_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.test_pipeline]
# Both splits read the same folders; the image lists differ.
voc = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))
train_dataloader = dict(dataset=dict(
    **voc, ann_file='ImageSets/Segmentation/train.txt', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    **voc, ann_file='ImageSets/Segmentation/val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
