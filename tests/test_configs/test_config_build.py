"""Every downstream config loads, builds its model with torchvision-style keys and random init,
and agrees with its dataset (classes) and with the protocol it shrinks (tiny variants)."""
import os

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from config_helpers import (default_root, DET_CONFIGS, DET_DIR, PROTOCOL_CONFIGS, SEG_CONFIGS, SEG_DIR,
                            TINY_CONFIGS, build_model, dataloaders, load, registries)

ALL_CONFIGS = DET_CONFIGS + SEG_CONFIGS


def _num_classes(cfg: Config):
    """Every num_classes of the model's heads."""
    heads = [cfg.model.get('decode_head'), cfg.model.get('auxiliary_head')]
    if cfg.model.get('roi_head'):
        heads += [cfg.model.roi_head.get('bbox_head'), cfg.model.roi_head.get('mask_head')]
    return {head.num_classes for head in heads if head}


def _classes(cfg: Config):
    """The classes the validation dataset declares (its metainfo, else its class's)."""
    _, datasets = registries(cfg)
    dataset = cfg.val_dataloader.dataset
    metainfo = dataset.get('metainfo') or datasets.get(dataset.type).METAINFO
    return tuple(metainfo['classes'])


def test_configs_are_found():
    names = {p.name for p in ALL_CONFIGS}
    assert {'faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py', 'mask-rcnn_r50-fpn-syncbn_1x_coco.py',
            'fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py',
            'fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py'} <= names
    # A tiny CPU variant of each protocol family on the scenes and on real data.
    for family in ('faster-rcnn_r18-c4', 'mask-rcnn_r18-fpn', 'fcn_r18-d8-plain'):
        tiny = [p.name for p in TINY_CONFIGS if p.name.startswith(family)]
        assert any('scenes' in n for n in tiny) and any('scenes' not in n for n in tiny), tiny


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: p.name)
def test_builds_with_torchvision_keys_and_random_init(path):
    cfg = load(path)
    assert cfg.default_scope in ('mmdet', 'mmseg')
    assert 'dsc_mm' in cfg.custom_imports.imports
    # One place for the pretrained weights: tools/train.py --pretrained; random otherwise.
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.get('pretrained') is None
    assert cfg.get('load_from') is None
    model = build_model(cfg)
    keys = set(model.backbone.state_dict())
    # torchvision names (plain stem), which converted SSL checkpoints use.
    assert {'conv1.weight', 'bn1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight'} <= keys
    assert not any(k.startswith('stem.') for k in keys)
    shared_head = getattr(getattr(model, 'roi_head', None), 'shared_head', None)
    if shared_head is not None:
        assert cfg.model.roi_head.shared_head.init_cfg is None
        head_keys = set(shared_head.state_dict())
        assert {'layer4.0.conv1.weight', 'layer4.0.downsample.0.weight',
                'norm.weight'} <= head_keys
    # The heads predict exactly the dataset's classes.
    assert _num_classes(cfg) == {len(_classes(cfg))}


def test_scenes_classes_match_the_generator():
    from dsc_mm.datasets.scenes import SCENE_CLASSES, SCENE_SEG_CLASSES
    det = Config.fromfile(str(DET_DIR / '_base_/datasets/scenes_metainfo.py'))
    seg = Config.fromfile(str(SEG_DIR / '_base_/datasets/scenes_metainfo.py'))
    assert det.scenes_metainfo.classes == tuple(SCENE_CLASSES)
    assert seg.scenes_metainfo.classes == tuple(SCENE_SEG_CLASSES)
    assert len(seg.scenes_metainfo.palette) == len(SCENE_SEG_CLASSES)
    for path in TINY_CONFIGS:
        if 'scenes' in path.name:
            cfg = load(path)
            expected = det if cfg.default_scope == 'mmdet' else seg
            for loader in dataloaders(cfg):
                assert loader.dataset.metainfo == expected.scenes_metainfo, path.name


def _protocol_of(tiny_path):
    """The protocol config a tiny variant shrinks (same folder, family = name before _tiny)."""
    family = tiny_path.name.split('_tiny')[0]
    protocol = {'faster-rcnn_r18-c4': 'faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py',
                'mask-rcnn_r18-fpn': 'mask-rcnn_r50-fpn-syncbn_1x_coco.py',
                'fcn_r18-d8-plain': 'fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py'}[family]
    return tiny_path.parent / protocol


def _norm_types(node):
    """The type of every ``norm_cfg`` anywhere in a (model) config."""
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get('norm_cfg'), dict):
            found.add(node['norm_cfg']['type'])
        for value in node.values():
            found |= _norm_types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found |= _norm_types(value)
    return found


@pytest.mark.parametrize('path', TINY_CONFIGS, ids=lambda p: p.name)
def test_tiny_variant_is_the_protocol_shrunk(path):
    tiny, protocol = load(path), load(_protocol_of(path))
    # Same architecture family and normalisation of the inputs...
    assert tiny.model.type == protocol.model.type
    assert tiny.model.backbone.type == protocol.model.backbone.type == 'ResNet'
    assert tiny.model.backbone.style == protocol.model.backbone.style == 'pytorch'
    assert tiny.model.backbone.get('frozen_stages', -1) == -1  # mmseg's default is -1
    assert tiny.model.backbone.norm_eval is False
    for key in ('mean', 'std', 'bgr_to_rgb'):
        assert tiny.model.data_preprocessor[key] == protocol.model.data_preprocessor[key]
    for part in ('backbone.frozen_stages', 'roi_head.shared_head.type', 'roi_head.bbox_head.type',
                 'neck.type', 'backbone.dilations', 'backbone.strides', 'backbone.contract_dilation',
                 'decode_head.num_convs', 'decode_head.concat_input',
                 'auxiliary_head.in_index', 'auxiliary_head.loss_decode.loss_weight'):
        node_t, node_p = tiny.model, protocol.model
        for name in part.split('.'):
            node_t, node_p = (node_t or {}).get(name), (node_p or {}).get(name)
        assert node_t == node_p, part
    # ...but ResNet-18, plain BN (one CPU process), batch 2, no worker processes.
    assert tiny.model.backbone.depth == 18
    assert _norm_types(tiny.model) == {'BN'}
    assert 'SyncBN' in _norm_types(protocol.model)
    assert tiny.train_dataloader.batch_size == 2
    assert all(loader.num_workers == 0 for loader in dataloaders(tiny))
    assert tiny.train_cfg.type == 'IterBasedTrainLoop' and tiny.train_cfg.max_iters <= 500
    # The protocol's optimizer habits (detection: no weight decay on norm layers).
    assert tiny.optim_wrapper.get('paramwise_cfg') == protocol.optim_wrapper.get('paramwise_cfg')
    # The protocol's metric (VOC detection: the same IoU thresholds and 11-point AP).
    assert tiny.val_evaluator.type == protocol.val_evaluator.type
    if tiny.val_evaluator.type == 'VOCMetric':
        drop_scope = lambda d: {k: v for k, v in d.items() if k != '_scope_'}  # noqa: E731
        assert drop_scope(tiny.val_evaluator) == drop_scope(protocol.val_evaluator)


@pytest.mark.parametrize('path', PROTOCOL_CONFIGS, ids=lambda p: p.name)
def test_protocol_configs_default_to_repo_data(path):
    # OpenMMLab's data/ layout relative to the working directory (symlink the datasets there).
    for loader in dataloaders(load(path)):
        dataset = loader.dataset
        roots = [d.data_root for d in dataset.datasets] if 'datasets' in dataset \
            else [dataset.data_root]
        assert all(root.startswith('data/') for root in roots), roots


@pytest.mark.parametrize('path', [p for p in TINY_CONFIGS if 'scenes' not in p.name],
                         ids=lambda p: p.name)
def test_real_data_variants_default_to_shared_data(path):
    for loader in dataloaders(load(path)):
        assert loader.dataset.data_root.startswith(default_root('../shared/data') + '/')


def test_voc0712_trains_on_both_years(tmp_path, scenes_root):
    """VOC07 trainval + VOC12 trainval form one dataset with one metainfo (mmdet's C4 VOC
    recipe omits ``ignore_keys``: its metainfo then becomes a list of two dicts)."""
    cfg = load(DET_DIR / 'faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py')
    _, datasets = registries(cfg)
    # A VOCdevkit whose two years are the scenes' VOC2012 (classes narrowed to the scenes').
    devkit = tmp_path / 'VOCdevkit'
    devkit.mkdir()
    for year in ('VOC2007', 'VOC2012'):
        os.symlink(scenes_root / 'VOCdevkit' / 'VOC2012', devkit / year)
    train = cfg.train_dataloader.dataset
    metainfo = load(DET_DIR / '_base_/datasets/scenes_metainfo.py').scenes_metainfo
    for dataset in train.datasets:
        dataset.data_root = str(devkit) + '/'
        dataset.ann_file = dataset.ann_file.replace('trainval', 'train')
        dataset.metainfo = metainfo
    with DefaultScope.overwrite_default_scope('mmdet'):
        built = datasets.build(train)
        single = datasets.build(train.datasets[0])
    assert len(built) == 2 * len(single) > 0
    assert {d.metainfo['dataset_type'] for d in built.datasets} == {'VOC2007', 'VOC2012'}
    assert isinstance(built.metainfo, dict)
    assert built.metainfo['classes'] == metainfo['classes']
    # Without ignore_keys (mmdet's pascal_voc C4 recipe) the metainfo splits in two.
    train.pop('ignore_keys')
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert isinstance(datasets.build(train).metainfo, list)
