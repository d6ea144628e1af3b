"""The tiny segmentation variants train and validate end to end on the procedural scenes through
mmengine's Runner (CPU, BN): one iteration, then mIoU on one image."""
import pytest

from config_helpers import SEG_DIR, load, rebase_data, run_tiny_segmentation


@pytest.mark.parametrize('name', ['fcn_r18-d8-plain_tiny_scenes-voc.py',
                                  'fcn_r18-d8-plain_tiny_scenes-cityscapes.py'])
def test_tiny_segmentation_on_scenes(name, scenes_root, tmp_path):
    cfg = rebase_data(load(SEG_DIR / name), 'data/scenes', scenes_root)
    runner = run_tiny_segmentation(cfg, tmp_path, num_classes=7)
    assert len(runner.val_dataloader.dataset) == 1
    assert runner.train_dataloader.dataset.metainfo['classes'][1] == 'disk'
