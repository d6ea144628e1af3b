"""VOC "difficult" boxes: trained on (detectron2's VOC loader), ignored at evaluation (VOCMetric),
on the shared coco128_voc (7 difficult boxes: 5 in train, 2 in val)."""
import xml.etree.ElementTree as ET

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

CONFIG = 'configs/detection/faster-rcnn_r18-c4_tiny_coco128-voc.py'


def _difficult_objects(devkit, split):
    """``{image id: number of difficult objects}`` of a VOC2012 split, read from the XMLs."""
    root = devkit / 'VOC2012'
    counts = {}
    for img_id in (root / 'ImageSets/Main' / f'{split}.txt').read_text().split():
        tree = ET.parse(root / 'Annotations' / f'{img_id}.xml')
        n = sum(int(obj.findtext('difficult', '0')) for obj in tree.findall('object'))
        if n:
            counts[img_id] = n
    return counts


@pytest.fixture(scope='module')
def voc(shared_data, repo_root):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    import dsc_mm  # noqa: F401  (registers VOCTrainDifficultDataset)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(repo_root / CONFIG))
    devkit = shared_data / 'coco128_voc' / 'VOCdevkit'
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = str(devkit) + '/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        mmdet_train = DATASETS.build(dict(cfg.train_dataloader.dataset, type='VOCDataset'))
    return devkit, cfg, train, val, mmdet_train


def _flags(dataset, img_id):
    info = next(dataset.get_data_info(i) for i in range(len(dataset))
                if dataset.get_data_info(i)['img_id'] == img_id)
    return [inst['ignore_flag'] for inst in info['instances']]


def test_difficult_boxes_are_training_targets(voc):
    devkit, _, train, _, mmdet_train = voc
    difficult = _difficult_objects(devkit, 'train')
    assert sum(difficult.values()) + sum(_difficult_objects(devkit, 'val').values()) == 7
    assert sum(difficult.values()) == 5
    for img_id, n in difficult.items():
        # mmdet's VOCDataset would drop them from training (ignore_flag=1)...
        assert sum(_flags(mmdet_train, img_id)) == n
        # ...here they are targets like every other box.
        assert set(_flags(train, img_id)) == {0}
    # Through the training pipeline: the difficult box is in gt_instances, none is ignored.
    img_id = sorted(difficult)[0]
    index = next(i for i in range(len(train)) if train.get_data_info(i)['img_id'] == img_id)
    sample = train[index]['data_samples']
    assert len(sample.gt_instances) == len(_flags(train, img_id))
    assert len(sample.ignored_instances) == 0


def test_difficult_boxes_are_ignored_at_evaluation(voc):
    from mmdet.evaluation import VOCMetric
    devkit, cfg, _, val, _ = voc
    difficult = _difficult_objects(devkit, 'val')
    assert sum(difficult.values()) == 2
    samples = []
    for i in range(len(val)):
        if val.get_data_info(i)['img_id'] in difficult:
            sample = val[i]['data_samples']
            assert len(sample.ignored_instances) == difficult[sample.img_id]
            samples.append(sample)

    def score(with_difficult):
        metric = VOCMetric(**{k: v for k, v in cfg.val_evaluator.items() if k != 'type'})
        metric.dataset_meta = val.metainfo
        for sample in samples:
            # Original-image boxes (the test pipeline loads annotations after resizing).
            gt = dict(bboxes=sample.gt_instances.bboxes.tensor, labels=sample.gt_instances.labels)
            ignored = dict(bboxes=sample.ignored_instances.bboxes.tensor,
                           labels=sample.ignored_instances.labels)
            pred = {key: torch.cat([gt[key], ignored[key]]) if with_difficult else gt[key]
                    for key in ('bboxes', 'labels')}
            pred['scores'] = torch.ones(len(pred['labels']))
            metric.process({}, [dict(gt_instances=gt, ignored_instances=ignored,
                                     pred_instances=pred)])
        return metric.compute_metrics(metric.results)['mAP']

    # Missing a difficult box costs nothing (not a false negative), and finding it earns
    # nothing and costs nothing (not a false positive): both score perfectly.
    assert score(with_difficult=False) == pytest.approx(1.0)
    assert score(with_difficult=True) == pytest.approx(1.0)
