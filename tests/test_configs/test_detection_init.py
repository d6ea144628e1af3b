"""Random-init detection rows start as detectron2's: no zero-initialised last BN per block."""
import pytest
import torch
from mmengine.config import Config

CONFIGS = ['configs/detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py',
           'configs/detection/mask-rcnn_r50-fpn-syncbn_1x_coco.py']


@pytest.mark.parametrize('config', CONFIGS)
def test_backbone_blocks_end_in_a_unit_bn_as_detectron2(repo_root, config):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(repo_root / config))
    assert cfg.model.backbone.zero_init_residual is False
    with DefaultScope.overwrite_default_scope('mmdet'):  # mmdet's ResNet, whatever ran before
        backbone = MODELS.build(cfg.model.backbone)
    assert type(backbone).__module__.startswith('mmdet.')
    backbone.init_weights()
    last_bns = [block.norm3.weight for layer in (backbone.layer1, backbone.layer3)
                for block in layer]
    assert all(torch.equal(w, torch.ones_like(w)) for w in last_bns)
