"""The tiny segmentation variants on the real mini datasets (``DSC_MM_DATA``), end to end
through mmengine's Runner, as ``test_tiny_segmentation.py`` does on the procedural scenes."""
import pytest

from config_helpers import SEG_DIR, load, rebase_data, run_tiny_segmentation


@pytest.mark.parametrize('name, num_classes', [('fcn_r18-d8-plain_tiny_coco128-voc.py', 21),
                                               ('fcn_r18-d8-plain_tiny_camvid.py', 11)])
def test_tiny_segmentation_on_real_data(name, num_classes, shared_data, tmp_path):
    cfg = rebase_data(load(SEG_DIR / name), '../shared/data', shared_data)
    runner = run_tiny_segmentation(cfg, tmp_path, num_classes)
    assert len(runner.val_dataloader.dataset) == 1
