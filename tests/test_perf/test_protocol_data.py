"""perf/protocol_data.py: the four protocol configs, unchanged, find their data in the scenes."""
import pytest
from mmengine.config import Config

PROTOCOLS = {
    'configs/detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py': 'mmdet',
    'configs/detection/mask-rcnn_r50-fpn-syncbn_1x_coco.py': 'mmdet',
    'configs/segmentation/fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py': 'mmseg',
    'configs/segmentation/fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py': 'mmseg',
}


@pytest.fixture(scope='module')
def laid_out(tmp_path_factory, load_script):
    from dsc_mm.datasets.scenes import generate_scenes
    root = tmp_path_factory.mktemp('protocols')
    scenes = generate_scenes(root / 'scenes', num_train=3, num_val=2, num_unlabeled=0, size=64)
    load_script('perf/protocol_data.py').layout(scenes, root / 'run' / 'data')
    return root / 'run'


def _build(config, scope, split):
    from mmengine.registry import DATASETS, init_default_scope
    if scope == 'mmdet':
        from mmdet.utils import register_all_modules
    else:
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(scope)
    import dsc_mm.datasets  # noqa: F401  (VOCTrainDifficultDataset)
    return DATASETS.build(config[f'{split}_dataloader'].dataset)


@pytest.mark.parametrize('config', list(PROTOCOLS))
def test_each_protocol_config_reads_labelled_scenes(repo_root, laid_out, monkeypatch, config):
    monkeypatch.chdir(laid_out)  # the configs' data roots are relative: data/...
    cfg = Config.fromfile(str(repo_root / config))
    for split, images in (('train', 3), ('val', 2)):
        dataset = _build(cfg, PROTOCOLS[config], split)
        # VOC07+12 and VOC12 + aug read the scenes twice; every image keeps labelled objects
        # or pixels.
        twice = split == 'train' and ('voc0712' in config or 'voc12aug' in config)
        assert len(dataset) == images * (2 if twice else 1)
        info = dataset.get_data_info(0)
        if PROTOCOLS[config] == 'mmdet':
            assert any(inst['ignore_flag'] == 0 for inst in info['instances'])
        else:
            assert info['seg_map_path'].endswith('.png')


def test_missing_scenes_are_one_clear_error(tmp_path, load_script):
    with pytest.raises(SystemExit, match='run tools/generate_scenes.py --out'):
        load_script('perf/protocol_data.py').layout(tmp_path / 'none', tmp_path / 'data')
