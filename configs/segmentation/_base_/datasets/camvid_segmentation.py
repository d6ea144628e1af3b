# camvid_mini (CamVid, SegNet 11 classes, 480x360; 25 train / 8 val / 8 test) at CPU size:
# short side 240 (resize ratio 0.5-2.0), 192 px crops. Unlabelled (11) is ignored (255) by
# CamVidDataset. Relative to the repository root; override both dataloaders' data_root elsewhere.
_base_ = ['./tiny_segmentation.py']

dataset_type = 'CamVidDataset'
data_root = '{{$DSC_MM_DATA:../shared/data}}/camvid_mini/'
scale = (480, 240)
# The shared pipelines at this dataset's scale (the resize steps are the ones with a scale).
train_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=scale) if 'scale' in t else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=train_pipeline,
    ann_file='train.txt', data_prefix=dict(img_path='train', seg_map_path='trainannot')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, pipeline=test_pipeline,
    ann_file='val.txt', data_prefix=dict(img_path='val', seg_map_path='valannot')))
test_dataloader = val_dataloader
