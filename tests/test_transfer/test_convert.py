"""Converted backbones reproduce the pretraining backbone exactly in every target framework."""
import os
import pickle
import re

import numpy as np
import pytest
import torch
import torchvision
from mmengine.config import Config

from dsc_mm.transfer import convert_checkpoint


def _randomise_bn(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every BN non-trivial statistics, so a wrongly loaded norm changes the features."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=generator) - 0.5)


@pytest.fixture(scope='module')
def densecl_r18(repo_root, tmp_path_factory):
    """A tiny DenseCL ResNet-18 pretraining checkpoint, key encoder different from the query.

    Returns:
        tuple: (checkpoint path, the mmpretrain DenseCL model in eval mode).
    """
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(repo_root / 'tests/data/configs/densecl_r18_tiny_folder.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        _randomise_bn(model.backbone, generator)
        _randomise_bn(model.encoder_k, generator)
        for p in model.encoder_k.parameters():  # an EMA that has moved away from the query
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    path = tmp_path_factory.mktemp('densecl') / 'epoch_4.pth'
    torch.save({'meta': {'epoch': 4, 'iter': 4}, 'state_dict': model.state_dict(),
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.03}]},
                'message_hub': {'log_scalars': {}}}, path)
    return path, model


def _stages(model, x):
    """Stem output then the four stage outputs of a torchvision-named ResNet."""
    norm1 = getattr(model, 'bn1', None) or model.norm1
    x = model.maxpool(model.relu(norm1(model.conv1(x))))
    outs = [x]
    for name in ('layer1', 'layer2', 'layer3', 'layer4'):
        x = getattr(model, name)(x)
        outs.append(x)
    return outs


@pytest.fixture(scope='module')
def inputs():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def _load_converted(path):
    converted = torch.load(path, weights_only=True)
    assert type(converted) is dict and all(isinstance(v, torch.Tensor) for v in converted.values())
    return converted


def test_mmdet_resnet_features_identical(densecl_r18, inputs, tmp_path):
    from mmdet.models.backbones import ResNet
    src, pretrain = densecl_r18
    dst = tmp_path / 'r18_mmdet.pth'
    convert_checkpoint(str(src), str(dst), 'mmdet')
    target = ResNet(depth=18, style='pytorch', out_indices=(0, 1, 2, 3))
    target.load_state_dict(_load_converted(dst), strict=True)
    target.eval()  # mmdet's ResNet.train() returns None, so no chaining
    with torch.no_grad():
        expected = _stages(pretrain.backbone, inputs)[1:]
        got = target(inputs)
    assert len(got) == 4
    for e, g in zip(expected, got):
        assert (e - g).abs().max().item() == 0


def test_mmdet_c4_shared_head_runs_res5_identically(densecl_r18, tmp_path):
    """The C4 detector's RoI head is res5 (``layer4``): same output on the same C4 feature."""
    from mmdet.models.roi_heads.shared_heads import ResLayer
    src, pretrain = densecl_r18
    dst = tmp_path / 'r18_mmdet.pth'
    convert_checkpoint(str(src), str(dst), 'mmdet')
    head = ResLayer(depth=18, stage=3, style='pytorch', norm_eval=False)
    res5 = {k: v for k, v in _load_converted(dst).items() if k.startswith('layer4.')}
    head.load_state_dict(res5, strict=True)
    head.eval()
    c4 = torch.randn(2, 256, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (head(c4) - pretrain.backbone.layer4(c4)).abs().max().item() == 0


def test_mmseg_d8_resnet_loads_every_weight_and_matches_stem_layer1(densecl_r18, inputs, tmp_path):
    from mmseg.models.backbones import ResNet
    src, pretrain = densecl_r18
    dst = tmp_path / 'r18_mmseg.pth'
    convert_checkpoint(str(src), str(dst), 'mmseg')
    target = ResNet(depth=18, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                    contract_dilation=True)
    target.load_state_dict(_load_converted(dst), strict=True)
    target.eval()
    source = pretrain.backbone.state_dict()
    for key, value in target.state_dict().items():
        assert torch.equal(value, source[key]), key
    with torch.no_grad():
        expected, got = _stages(pretrain.backbone, inputs), _stages(target, inputs)
    # Stem and layer1 have no dilation in the D8 layout, so they must agree exactly.
    for e, g in zip(expected[:2], got[:2]):
        assert (e - g).abs().max().item() == 0


def test_torchvision_resnet_features_identical(densecl_r18, inputs, tmp_path):
    src, pretrain = densecl_r18
    dst = tmp_path / 'r18_tv.pth'
    convert_checkpoint(str(src), str(dst), 'torchvision')
    target = torchvision.models.resnet18(weights=None).eval()
    result = target.load_state_dict(_load_converted(dst), strict=False)
    # The classifier is not part of a backbone; nothing else may be missing.
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight']
    assert result.unexpected_keys == []
    with torch.no_grad():
        for e, g in zip(_stages(pretrain.backbone, inputs), _stages(target, inputs)):
            assert (e - g).abs().max().item() == 0


def test_key_encoder_gives_the_ema_weights(densecl_r18, tmp_path):
    src, pretrain = densecl_r18
    convert_checkpoint(str(src), str(tmp_path / 'q.pth'), 'mmdet', encoder='query')
    convert_checkpoint(str(src), str(tmp_path / 'k.pth'), 'mmdet', encoder='key')
    query, key = _load_converted(tmp_path / 'q.pth'), _load_converted(tmp_path / 'k.pth')
    ema = pretrain.encoder_k.module[0].state_dict()
    assert set(key) == set(ema) == set(query)
    for name, value in key.items():
        assert torch.equal(value, ema[name]), name
    assert not torch.equal(key['conv1.weight'], query['conv1.weight'])
    assert torch.equal(query['conv1.weight'], pretrain.backbone.conv1.weight)


def test_extracted_backbone_is_accepted_and_fc_dropped(tmp_path):
    """A torchvision state dict (with ``fc``) under ``state_dict`` converts to the backbone."""
    tv = torchvision.models.resnet18(weights=None)
    src = tmp_path / 'tv.pth'
    torch.save({'state_dict': tv.state_dict()}, src)
    convert_checkpoint(str(src), str(tmp_path / 'out.pth'), 'torchvision', depth=18)
    out = _load_converted(tmp_path / 'out.pth')
    assert set(out) == {k for k in tv.state_dict() if not k.startswith('fc.')}


# detectron2 names written down from detectron2's ResNet (stem.conv1 + norm child, res2..res5,
# shortcut), independent of dsc_mm's rename.
_D2_KEY = re.compile(r'^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))(\.norm)?\.'
                     r'(weight|bias|running_mean|running_var|num_batches_tracked)$')


def _from_detectron2(key):
    """Inverse rename (detectron2 -> torchvision), written independently of the converter."""
    key = key.replace('shortcut.norm', 'downsample.1').replace('shortcut', 'downsample.0')
    key = re.sub(r'conv(\d)\.norm', r'bn\1', key)
    key = re.sub(r'^res(\d)', lambda m: f'layer{int(m.group(1)) - 1}', key)
    return key[len('stem.'):] if key.startswith('stem.') else key


def test_detectron2_r50_keys_and_container(tmp_path):
    tv = torchvision.models.resnet50(weights=None)
    source = tv.state_dict()
    src = tmp_path / 'r50_tv.pth'
    torch.save(source, src)
    dst = tmp_path / 'r50.pkl'
    summary = convert_checkpoint(str(src), str(dst), 'detectron2', depth=50)
    with open(dst, 'rb') as f:
        obj = pickle.load(f)
    assert set(obj) == {'model', '__author__', 'matching_heuristics'}
    assert obj['__author__'] == 'dsc_mm' and obj['matching_heuristics'] is True
    model = obj['model']
    assert all(isinstance(v, np.ndarray) for v in model.values())
    assert all(_D2_KEY.match(k) for k in model), [k for k in model if not _D2_KEY.match(k)][:5]
    # R50: 53 convs (49 + 4 shortcuts) each with a BN: 53 + 53 * 5 tensors.
    assert len(model) == 318
    blocks = [len({k.split('.')[1] for k in model if k.startswith(f'res{s}.')})
              for s in range(2, 6)]
    assert blocks == [3, 4, 6, 3]
    for anchor in ('stem.conv1.weight', 'stem.conv1.norm.running_var', 'res2.0.shortcut.weight',
                   'res2.0.shortcut.norm.bias', 'res4.5.conv3.norm.weight', 'res5.2.conv2.weight'):
        assert anchor in model
    assert {_from_detectron2(k) for k in model} == {k for k in source if not k.startswith('fc.')}
    for key, value in model.items():
        np.testing.assert_array_equal(value, source[_from_detectron2(key)].numpy())
    assert model['stem.conv1.weight'].dtype == np.float32
    for setting in ('INPUT.FORMAT RGB', 'MODEL.RESNETS.STRIDE_IN_1X1 False',
                    'MODEL.RESNETS.NORM SyncBN', 'MODEL.BACKBONE.FREEZE_AT 0',
                    'MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]',
                    'MODEL.PIXEL_STD [58.395, 57.12, 57.375]'):
        assert setting in summary


@pytest.mark.parametrize('depth', [18, 34, 50, 101])
def test_depth_is_detected_from_the_block_counts(depth):
    from dsc_mm.transfer import detect_depth
    with torch.device('meta'):  # names and shapes only
        state_dict = getattr(torchvision.models, f'resnet{depth}')(weights=None).state_dict()
    assert detect_depth(state_dict, 'r.pth') == depth


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from dsc_mm.transfer.convert import atomic_write
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous')

    def write_then_fail(file):
        file.write(b'partial')
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(dst), write_then_fail)
    assert dst.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['out.pth']
    atomic_write(str(dst), lambda file: file.write(b'new'))
    assert dst.read_bytes() == b'new' and os.listdir(tmp_path) == ['out.pth']
