"""configs/detectron2/*.yaml: only detectron2's own config keys, the settings a checkpoint of
``tools/convert_checkpoint.py --to detectron2`` needs, and the numbers of the mmdet configs of
the same protocols."""
import ast

import pytest
import yaml

from config_helpers import DET_DIR, REPO_ROOT, load
from dsc_mm.transfer.detectron2 import CONFIG_SETTINGS

D2_DIR = REPO_ROOT / 'configs' / 'detectron2'
KEYS_FILE = REPO_ROOT / 'tests' / 'data' / 'detectron2_defaults_keys.txt'
VOC_YAML = D2_DIR / 'pascal_voc_R_50_C4_24k_syncbn.yaml'
COCO_YAML = D2_DIR / 'coco_mask_rcnn_R_50_FPN_1x_syncbn.yaml'


def _decode(value):
    """A YAML value as detectron2's CfgNode reads it (strings are tried as Python literals)."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _flatten(node, prefix=''):
    """``{'MODEL.RESNETS.NORM': 'SyncBN', ...}`` of a nested YAML mapping."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = _decode(value)
    return flat


def _yaml(path):
    return _flatten(yaml.safe_load(path.read_text()))


def _default_keys():
    return {line.strip() for line in KEYS_FILE.read_text().splitlines()
            if line.strip() and not line.startswith('#')}


def test_key_list_is_detectron2s():
    keys = _default_keys()
    assert len(keys) == 183
    # Spot checks of what the protocols use: the names as detectron2 spells them.
    assert {'SOLVER.WEIGHT_DECAY_NORM', 'TEST.PRECISE_BN.ENABLED', 'TEST.PRECISE_BN.NUM_ITER',
            'MODEL.RESNETS.STRIDE_IN_1X1', 'MODEL.BACKBONE.FREEZE_AT', 'INPUT.FORMAT'} <= keys


def test_yaml_files_are_found():
    assert sorted(p.name for p in D2_DIR.glob('*.yaml')) == sorted([VOC_YAML.name,
                                                                   COCO_YAML.name])


@pytest.mark.parametrize('path', [VOC_YAML, COCO_YAML], ids=lambda p: p.name)
def test_every_key_is_a_detectron2_default_key(path):
    unknown = sorted(set(_yaml(path)) - _default_keys())
    assert not unknown, f'{path.name}: not in detectron2/config/defaults.py: {unknown}'


@pytest.mark.parametrize('path', [VOC_YAML, COCO_YAML], ids=lambda p: p.name)
def test_yaml_fits_the_converted_checkpoint(path):
    """The settings --to detectron2 prints: RGB, torchvision mean/std, STRIDE_IN_1X1 False,
    FREEZE_AT 0, SyncBN."""
    cfg = _yaml(path)
    for key, value in CONFIG_SETTINGS:
        assert cfg[key] == _decode(value), key
    assert cfg['MODEL.RESNETS.DEPTH'] == 50


def _multistep(cfg):
    return next(s for s in cfg.param_scheduler if s.type == 'MultiStepLR')


def _warmup(cfg):
    return next(s for s in cfg.param_scheduler if s.type == 'LinearLR')


@pytest.mark.parametrize('path, mmdet_config', [
    (VOC_YAML, 'faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py'),
    (COCO_YAML, 'mask-rcnn_r50-fpn-syncbn_1x_coco.py'),
], ids=['voc', 'coco'])
def test_same_protocol_numbers_as_the_mmdet_config(path, mmdet_config):
    d2, mm = _yaml(path), load(DET_DIR / mmdet_config)
    optimizer = mm.optim_wrapper.optimizer
    assert d2['SOLVER.IMS_PER_BATCH'] == mm.auto_scale_lr.base_batch_size == 16
    assert d2['SOLVER.BASE_LR'] == optimizer.lr
    assert d2['SOLVER.MOMENTUM'] == optimizer.momentum
    assert d2['SOLVER.WEIGHT_DECAY'] == optimizer.weight_decay
    assert d2['SOLVER.WEIGHT_DECAY_NORM'] == \
        optimizer.weight_decay * mm.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
    assert d2['SOLVER.MAX_ITER'] == mm.train_cfg.max_iters
    assert list(d2['SOLVER.STEPS']) == _multistep(mm).milestones
    assert d2['SOLVER.WARMUP_METHOD'] == 'linear'
    assert d2['SOLVER.WARMUP_ITERS'] == _warmup(mm).end
    assert d2['SOLVER.WARMUP_FACTOR'] == _warmup(mm).start_factor
    precise = next(h for h in mm.custom_hooks if h.type == 'PreciseBNBeforeEvalHook')
    assert d2['TEST.PRECISE_BN.ENABLED'] is True
    assert d2['TEST.PRECISE_BN.NUM_ITER'] == precise.num_iters
    train_sets = mm.train_dataloader.dataset.get('datasets') or [mm.train_dataloader.dataset]
    resize = next(t for t in train_sets[0].pipeline if t.type == 'RandomChoiceResize')
    assert list(d2['INPUT.MIN_SIZE_TRAIN']) == [min(s) for s in resize.scales]
    assert d2['INPUT.MAX_SIZE_TRAIN'] == max(resize.scales[0])
    assert d2['INPUT.MIN_SIZE_TEST'] == 800
    num_classes = mm.model.roi_head.bbox_head.num_classes
    assert d2['MODEL.ROI_HEADS.NUM_CLASSES'] == num_classes
    assert d2['MODEL.MASK_ON'] is ('mask_head' in mm.model.roi_head)
    # SyncBN wherever the mmdet model has it (backbone; FPN and both heads for COCO).
    if 'neck' in mm.model:
        assert d2['MODEL.FPN.NORM'] == d2['MODEL.ROI_BOX_HEAD.NORM'] == \
            d2['MODEL.ROI_MASK_HEAD.NORM'] == 'SyncBN'
        # Shared4Conv1FCBBoxHead: 4 convs, 1 fc.
        assert (d2['MODEL.ROI_BOX_HEAD.NUM_CONV'], d2['MODEL.ROI_BOX_HEAD.NUM_FC']) == (4, 1)
    else:
        assert d2['MODEL.ROI_HEADS.NAME'] == 'Res5ROIHeadsExtraNorm'
