"""The tiny detection variants train and validate end to end on the procedural scenes through
mmengine's Runner (CPU, BN): one iteration, then the protocol's metric on one image."""
import pytest

from config_helpers import (COCO_METRICS, DET_DIR, FASTER_LOSSES, MASK_LOSSES, VOC_METRICS, load,
                            rebase_data, run_tiny_detection)


@pytest.mark.parametrize('name, layout, losses, metrics', [
    ('faster-rcnn_r18-c4_tiny_scenes-voc.py', 'VOCdevkit', FASTER_LOSSES, VOC_METRICS),
    ('mask-rcnn_r18-fpn_tiny_scenes.py', 'coco', MASK_LOSSES, COCO_METRICS),
])
def test_tiny_detection_on_scenes(name, layout, losses, metrics, scenes_root, tmp_path):
    cfg = rebase_data(load(DET_DIR / name), 'data/scenes', scenes_root)
    assert cfg.train_dataloader.dataset.data_root.startswith(f'{scenes_root}/{layout}')
    runner = run_tiny_detection(cfg, tmp_path, losses, metrics)
    assert runner.train_dataloader.dataset.metainfo['classes'][0] == 'disk'
