"""``--pretrained``: configs load the converted backbone (and the C4 head its res5), verified."""
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from dsc_mm.transfer import apply_pretrained, check_loaded
from dsc_mm.utils import CheckpointError

# Faster R-CNN R50-C4 with the self-supervised protocol's pytorch-style backbone, SyncBN and
# MoCo's extra norm after res5 (mmpretrain's ResLayerExtraNorm).
C4_CONFIG = """
_base_ = 'mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py'
default_scope = 'mmdet'
custom_imports = dict(imports=['mmpretrain.models'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(style='pytorch', frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False),
    roi_head=dict(shared_head=dict(type='ResLayerExtraNorm', style='pytorch', norm_cfg=norm_cfg,
                                   norm_eval=False)))
"""
# mmseg's FCN R18-D8 with the plain (torchvision) stem, and the stock one with the deep stem.
FCN_PLAIN_STEM = "_base_ = 'mmseg::fcn/fcn_r18b-d8_4xb2-80k_cityscapes-512x1024.py'\n"
FCN_DEEP_STEM = "_base_ = 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py'\n"


def _config(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / 'work_dir')
    return cfg


def _build(cfg):
    from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def densecl_r18(repo_root, tmp_path_factory):
    """A tiny DenseCL ResNet-18 pretraining checkpoint whose key encoder differs from the query."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(repo_root / 'tests/data/configs/densecl_r18_tiny_folder.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for p in model.encoder_k.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp('densecl') / 'densecl_r18.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': model.state_dict()}, path)
    return path, model


def test_c4_detector_backbone_and_res5_head_come_from_the_file(tmp_path):
    from mmpretrain.models.backbones import ResNet
    torch.manual_seed(0)
    source = ResNet(depth=50, out_indices=(2, 3))
    with torch.no_grad():  # non-trivial BN statistics: a BN left at init changes features
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    source.eval()
    src = tmp_path / 'r50_backbone.pth'
    torch.save(source.state_dict(), src)

    cfg = _config(tmp_path, C4_CONFIG, 'c4.py')
    used = apply_pretrained(cfg, str(src))
    assert used.startswith(cfg.work_dir)
    head_cfg = cfg.model.roi_head.shared_head
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=used,
                                               prefix='backbone.')
    assert head_cfg.init_cfg == dict(type='Pretrained', checkpoint=used,
                                     prefix='roi_head.shared_head.')
    assert dict(type='PretrainedCheckHook', checkpoint=used) in cfg.custom_hooks
    # Each part gets exactly its tensors: stem..res4 for the backbone, res5 for the head.
    written = torch.load(used, weights_only=True)
    expected = {('roi_head.shared_head.' if k.startswith('layer4.') else 'backbone.') + k
                for k in source.state_dict()}
    assert set(written) == expected

    detector = _build(cfg)
    detector.init_weights()
    detector.eval()
    assert check_loaded(detector, used) == len(source.state_dict())
    head = detector.roi_head.shared_head
    assert torch.equal(head.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    assert torch.equal(head.layer4[2].bn3.running_var, source.layer4[2].bn3.running_var)

    with torch.no_grad():
        image = torch.randn(1, 3, 64, 64)
        c4_expected, c5_expected = source(image)
        c4 = detector.backbone(image)[0]
        assert (c4 - c4_expected).abs().max().item() == 0
        # res5 of the detector (run by the RoI head on RoI features) on the same C4 feature.
        assert (head.layer4(c4) - c5_expected).abs().max().item() == 0


def test_pretraining_checkpoint_into_plain_stem_fcn(densecl_r18, tmp_path):
    src, pretrain = densecl_r18
    for encoder, encoder_model in (('query', pretrain.backbone),
                                   ('key', pretrain.encoder_k.module[0])):
        cfg = _config(tmp_path, FCN_PLAIN_STEM, 'fcn.py')
        used = apply_pretrained(cfg, str(src), encoder=encoder)
        assert used.endswith(f'densecl_r18_{encoder}.pth')
        assert cfg.model.pretrained is None  # else mmseg would push torchvision:// into it
        segmentor = _build(cfg)
        segmentor.init_weights()
        assert check_loaded(segmentor, used) == len(encoder_model.state_dict())
        for key, value in encoder_model.state_dict().items():
            assert torch.equal(segmentor.backbone.state_dict()[key], value), (encoder, key)
    assert not torch.equal(pretrain.backbone.conv1.weight,
                           pretrain.encoder_k.module[0].conv1.weight)


def test_deep_stem_config_is_refused_with_the_fix(densecl_r18, tmp_path):
    cfg = _config(tmp_path, FCN_DEEP_STEM, 'fcn_v1c.py')
    with pytest.raises(CheckpointError) as error:
        apply_pretrained(cfg, str(densecl_r18[0]))
    message = str(error.value)
    assert 'keys missing' in message and 'stem.0.weight' in message
    assert "type='ResNet'" in message and str(densecl_r18[0]) in message


def test_depth_mismatch_with_the_config_is_refused(densecl_r18, tmp_path):
    cfg = _config(tmp_path, FCN_PLAIN_STEM + 'model = dict(backbone=dict(depth=50))\n', 'r50.py')
    with pytest.raises(CheckpointError, match='ResNet-18 backbone but the target is ResNet-50'):
        apply_pretrained(cfg, str(densecl_r18[0]))
    assert not (tmp_path / 'work_dir').exists()


def test_random_removes_every_pretrained_init(densecl_r18, tmp_path):
    cfg = _config(tmp_path, C4_CONFIG, 'c4.py')
    # The base config points both parts to a caffe checkpoint; 'random' must drop them.
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert apply_pretrained(cfg, 'random') is None
    assert 'init_cfg' not in cfg.model.backbone
    assert 'init_cfg' not in cfg.model.roi_head.shared_head
    assert not any(h.get('type') == 'PretrainedCheckHook' for h in cfg.get('custom_hooks', []))

    cfg = _config(tmp_path, FCN_PLAIN_STEM, 'fcn.py')
    apply_pretrained(cfg, str(densecl_r18[0]))
    apply_pretrained(cfg, 'random')
    assert cfg.model.pretrained is None and 'init_cfg' not in cfg.model.backbone
    assert cfg.custom_hooks == []


def test_check_hook_fails_on_a_model_that_did_not_load(densecl_r18, tmp_path):
    from mmseg.registry import HOOKS
    cfg = _config(tmp_path, FCN_PLAIN_STEM, 'fcn.py')
    used = apply_pretrained(cfg, str(densecl_r18[0]))
    # The hook is found from the runner's scope (mmseg here) through mmengine's root registry.
    with DefaultScope.overwrite_default_scope('mmseg'):
        hook = HOOKS.build(cfg.custom_hooks[-1])
    segmentor = _build(cfg)  # built, weights NOT initialised from the file
    runner = types.SimpleNamespace(model=segmentor, logger=MMLogger.get_current_instance(),
                                   _has_loaded=False)
    with pytest.raises(CheckpointError, match='model tensors differ from the file'):
        hook.before_train(runner)
    runner._has_loaded = True  # resumed / load_from: those weights win, nothing to check
    hook.before_train(runner)
    segmentor.init_weights()
    runner._has_loaded = False
    hook.before_train(runner)


def test_train_encoder_option_reaches_apply_pretrained(densecl_r18, load_script, tmp_path):
    """``tools/train.py CONFIG --pretrained CKPT --encoder key`` loads the EMA key encoder."""
    from dsc_mm.apis import merge_args
    train_tool = load_script('tools/train.py')
    src, pretrain = densecl_r18
    config = tmp_path / 'fcn.py'
    config.write_text(FCN_PLAIN_STEM)
    for flags, expected in (([], pretrain.backbone),
                            (['--encoder', 'key'], pretrain.encoder_k.module[0]),
                            (['--encoder', 'query'], pretrain.backbone)):
        args = train_tool.parse_args([str(config), '--work-dir', str(tmp_path / 'w'),
                                      '--pretrained', str(src), *flags])
        cfg = merge_args(Config.fromfile(str(config)), args)
        used = cfg.model.backbone.init_cfg.checkpoint
        assert used.endswith(f'densecl_r18_{(flags or ["", "query"])[1]}.pth')
        written = torch.load(used, weights_only=True)
        for key, value in expected.state_dict().items():
            assert torch.equal(written[f'backbone.{key}'], value), (flags, key)
    args = train_tool.parse_args([str(config), '--encoder', 'key'])
    with pytest.raises(ValueError, match='--encoder key chooses the encoder of a --pretrained'):
        merge_args(Config.fromfile(str(config)), args)
