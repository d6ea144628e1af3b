"""The tiny detection variants on the real mini datasets (``DSC_MM_DATA``), end to end through
mmengine's Runner, as ``test_tiny_detection.py`` does on the procedural scenes."""
import pytest

from config_helpers import (COCO_METRICS, DET_DIR, FASTER_LOSSES, MASK_LOSSES, VOC_METRICS, load,
                            rebase_data, run_tiny_detection)


@pytest.mark.parametrize('name, losses, metrics', [
    ('faster-rcnn_r18-c4_tiny_coco128-voc.py', FASTER_LOSSES, VOC_METRICS),
    ('mask-rcnn_r18-fpn_tiny_coco-tiny.py', MASK_LOSSES, COCO_METRICS),
])
def test_tiny_detection_on_real_data(name, losses, metrics, shared_data, tmp_path):
    cfg = rebase_data(load(DET_DIR / name), '../shared/data', shared_data)
    runner = run_tiny_detection(cfg, tmp_path, losses, metrics)
    assert len(runner.val_dataloader.dataset) == 1
