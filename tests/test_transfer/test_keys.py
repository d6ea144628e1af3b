"""The key-level pieces of conversion, called directly: finding the backbone in a checkpoint,
its depth, the strict key check, the detectron2 rename, and the messages of each refusal."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision

from dsc_mm.transfer import convert_checkpoint
from dsc_mm.transfer.convert import check_paths, convert_backbone
from dsc_mm.transfer.detectron2 import (config_settings, detectron2_shapes, rename_key,
                                        to_detectron2)
from dsc_mm.transfer.keys import (_top_prefixes, check_depth, detect_depth, extract_backbone,
                                  get_state_dict)
from dsc_mm.transfer.targets import check_against, reference_shapes
from dsc_mm.utils import CheckpointError


def _r18():
    with torch.device('meta'):
        return torchvision.models.resnet18(weights=None).state_dict()


def test_top_prefixes_summarises_keys_by_their_first_component():
    assert _top_prefixes([]) == 'no keys'
    assert _top_prefixes(['a.x', 'b.y', 'a.z', 'c']) == 'keys under a, b, c'
    keys = [f'k{i}.w' for i in range(8)]
    assert _top_prefixes(keys) == 'keys under k0, k1, k2, k3, k4, k5 and 2 more'
    assert _top_prefixes(keys[:6]) == 'keys under k0, k1, k2, k3, k4, k5'
    assert _top_prefixes(keys, limit=2) == 'keys under k0, k1 and 6 more'


def test_get_state_dict_takes_state_dict_or_the_top_level():
    inner = {'conv1.weight': torch.zeros(1)}
    assert get_state_dict({'state_dict': inner, 'meta': {}}, 'f.pth') is inner
    assert get_state_dict(inner, 'f.pth') is inner
    with pytest.raises(CheckpointError) as err:
        get_state_dict([inner], 'f.pth')
    assert str(err.value).startswith('f.pth holds a list, not a checkpoint dict; pass an '
                                     'mmpretrain pretraining checkpoint')
    with pytest.raises(CheckpointError) as err:
        get_state_dict({'state_dict': 3}, 'f.pth')
    assert str(err.value).startswith("f.pth: 'state_dict' is a int, not a dict of tensors")


def test_extract_backbone_names_the_file_of_a_non_checkpoint():
    with pytest.raises(CheckpointError, match=r'^p\.pth holds a tuple, not a checkpoint dict'):
        extract_backbone((1, 2), 'p.pth')


def test_extract_backbone_strips_the_encoder_prefix_in_checkpoint_order():
    t = [torch.full((1, ), float(i)) for i in range(5)]
    state = OrderedDict([('neck.w', t[0]), ('backbone.layer1.0.conv1.weight', t[1]),
                         ('backbone.conv1.weight', t[2]),
                         ('encoder_k.module.0.conv1.weight', t[3]),
                         ('encoder_k.module.1.mlp.weight', t[4])])
    query = extract_backbone({'state_dict': state}, 'p.pth')
    assert list(query.items()) == [('layer1.0.conv1.weight', t[1]), ('conv1.weight', t[2])]
    key = extract_backbone(state, 'p.pth', encoder='key')
    assert list(key.items()) == [('conv1.weight', t[3])]


def test_extract_backbone_of_torchvision_keys_drops_everything_else():
    state = OrderedDict([('conv1.weight', torch.zeros(1)), ('fc.weight', torch.zeros(1)),
                         ('bn1.bias', torch.zeros(1)), ('layer4.1.bn2.weight', torch.zeros(1)),
                         ('layer5.0.x', torch.zeros(1)), ('xconv1.weight', torch.zeros(1)),
                         (3, torch.zeros(1))])
    assert list(extract_backbone(state, 'p.pth')) == ['conv1.weight', 'bn1.bias',
                                                      'layer4.1.bn2.weight']


@pytest.mark.parametrize('state, encoder, message', [
    ({'backbone.conv1.weight': torch.zeros(1)}, 'ema',
     "--encoder must be 'query' or 'key', got 'ema'."),
    ({'conv1.weight': torch.zeros(1)}, 'key',
     'p.pth has no key encoder (encoder_k.module.0.* keys): only mmpretrain pretraining '
     'checkpoints of momentum methods (DSC, DenseCL, MoCo v2) have one; use --encoder query.'),
    ({'neck.a': 1, 'head.b': 2}, 'query',
     'p.pth contains no ResNet backbone (found keys under neck, head); pass an mmpretrain '
     'pretraining checkpoint (backbone.* keys) or a backbone state dict with torchvision keys '
     '(conv1.weight, layer1.0.conv1.weight, ...).'),
    ({'backbone.conv1.weight': torch.zeros(1), 'backbone.bn1.num': 3}, 'query',
     'p.pth: backbone entry bn1.num is a int, not a tensor; the file is not a weight '
     'checkpoint.'),
    ({'backbone.conv1.weight': 0, 'decode_head.conv_seg.weight': 0,
      'auxiliary_head.conv.weight': 0}, 'query',
     'p.pth is a detector/segmentor checkpoint (it has auxiliary_head., decode_head. keys), not '
     'a pretrained backbone; pass the self-supervised pretraining checkpoint (with backbone.* '
     'and encoder_k.* keys) or a converted backbone instead.'),
])
def test_extract_backbone_refusals_are_one_sentence(state, encoder, message):
    with pytest.raises(CheckpointError) as err:
        extract_backbone(state, 'p.pth', encoder)
    assert str(err.value) == message


@pytest.mark.parametrize('prefix', ['roi_head.', 'rpn_head.', 'bbox_head.', 'mask_head.',
                                    'decode_head.', 'auxiliary_head.', 'roi_heads.',
                                    'proposal_generator.'])
def test_every_downstream_prefix_is_refused(prefix):
    with pytest.raises(CheckpointError, match=f'it has {prefix} keys'):
        extract_backbone({'backbone.conv1.weight': 0, prefix + 'w': 0}, 'p.pth')


def test_detect_depth_refuses_a_layout_of_no_resnet():
    state = dict(_r18())
    del state['layer4.1.conv1.weight']  # block 1 of layer4 still exists through other keys
    assert detect_depth(state, 'r.pth') == 18
    for key in [k for k in state if k.startswith('layer4.1.')]:
        del state[key]
    with pytest.raises(CheckpointError) as err:
        detect_depth(state, 'r.pth')
    assert str(err.value) == ('r.pth: the backbone has [2, 2, 2, 1] blocks per stage with '
                              'BasicBlock blocks, which is no ResNet depth (18, 34, 50, 101, '
                              '152); pass a ResNet checkpoint.')
    # Bottleneck blocks are told by layer1.0.conv3: R101's counts with BasicBlocks (and R18's
    # with Bottlenecks) are no ResNet.
    with torch.device('meta'):
        r101 = torchvision.models.resnet101(weights=None).state_dict()
    del r101['layer1.0.conv3.weight']
    with pytest.raises(CheckpointError, match=r'\[3, 4, 23, 3\] blocks per stage with '
                                              r'BasicBlock'):
        detect_depth(r101, 'r.pth')
    r18 = dict(_r18(), **{'layer1.0.conv3.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r'\[2, 2, 2, 2\] blocks per stage with '
                                              r'Bottleneck'):
        detect_depth(r18, 'r.pth')
    with pytest.raises(CheckpointError, match=r'\[1, 0, 0, 0\] blocks per stage with '
                                              r'Bottleneck'):
        detect_depth({'layer1.0.conv3.weight': 0}, 'r.pth')


def test_check_depth():
    assert check_depth(50, None, 'r.pth') == 50
    assert check_depth(50, '50', 'r.pth') == 50
    with pytest.raises(CheckpointError) as err:
        check_depth(18, 50, 'r.pth', option='model.backbone.depth=')
    assert str(err.value) == ('r.pth holds a ResNet-18 backbone but the target is ResNet-50; '
                              'pass a ResNet-50 checkpoint or a target of depth 18 '
                              '(model.backbone.depth=18).')
    with pytest.raises(CheckpointError, match=r'\(--depth 18\)\.$'):
        check_depth(18, 50, 'r.pth')


def test_check_against_lists_counts_first_keys_and_shapes():
    with pytest.raises(CheckpointError, match=r'5 keys missing \(a, b, c, d, e\); pass'):
        check_against({}, dict.fromkeys('edcba', (1, )), 'p.pth', 'T')  # 5: all listed
    expected = {f'k{i}': (2, ) for i in range(8)}
    converted = {f'k{i}': torch.zeros(2) for i in range(8)}
    check_against(converted, expected, 'p.pth', 'T')  # equal: no error
    converted.pop('k7')
    for i in range(6):
        converted.pop(f'k{i}')
    converted.update(x=torch.zeros(1), k6=torch.zeros(3))
    with pytest.raises(CheckpointError) as err:
        check_against(converted, expected, 'p.pth', 'mmdet ResNet-18')
    assert str(err.value) == (
        'p.pth does not match the mmdet ResNet-18 backbone: 7 keys missing (k0, k1, k2, k3, '
        'k4, ...); 1 key unexpected (x); 1 key with the wrong shape (e.g. k6: (3,) in the file, '
        '(2,) in the model); pass a checkpoint of that architecture.')
    with pytest.raises(CheckpointError) as err:
        check_against({}, {'stem.0.conv.weight': (1, ), 'a': (1, )}, 'p.pth', 'T')
    assert str(err.value).endswith(
        "2 keys missing (a, stem.0.conv.weight); the target has a deep stem ('stem.*' of "
        "ResNetV1c/V1d) but self-supervised ResNets have the plain 7x7 stem, so use "
        "type='ResNet' in the config.")


@pytest.mark.parametrize('target', ['mmdet', 'mmseg', 'torchvision'])
def test_reference_shapes_are_the_torchvision_backbone(target):
    shapes = reference_shapes(target, 18)
    assert shapes == {k: tuple(v.shape) for k, v in _r18().items() if not k.startswith('fc.')}


def test_unknown_target_is_refused():
    from dsc_mm.transfer.targets import build_reference_backbone
    with pytest.raises(CheckpointError) as err:
        build_reference_backbone('timm', 18)
    assert str(err.value) == ("Unknown conversion target 'timm'; use one of mmdet, mmseg, "
                              "torchvision, detectron2.")
    with pytest.raises(CheckpointError) as err:
        convert_backbone('x.pth', 'timm')
    assert str(err.value) == ("Unknown conversion target 'timm'; use one of mmdet, mmseg, "
                              "torchvision, detectron2.")


@pytest.mark.parametrize('key, expected', [
    ('conv1.weight', 'stem.conv1.weight'),
    ('bn1.running_mean', 'stem.conv1.norm.running_mean'),
    ('layer1.0.bn3.weight', 'res2.0.conv3.norm.weight'),
    ('layer4.2.conv2.weight', 'res5.2.conv2.weight'),
    ('layer1.0.downsample.0.weight', 'res2.0.shortcut.weight'),
    ('layer3.0.downsample.1.running_var', 'res4.0.shortcut.norm.running_var'),
])
def test_rename_key(key, expected):
    assert rename_key(key) == expected


def test_detectron2_shapes_and_container():
    shapes = detectron2_shapes(18)
    assert shapes['res5.1.conv2.weight'] == (512, 512, 3, 3)
    assert len(shapes) == len(reference_shapes('torchvision', 18))
    backbone = OrderedDict([('conv1.weight', torch.ones(2, dtype=torch.bfloat16)),
                            ('bn1.bias', torch.ones(2, dtype=torch.float64)),
                            ('bn1.weight', torch.ones(2, dtype=torch.float16))])
    obj = to_detectron2(backbone)
    assert list(obj) == ['model', '__author__', 'matching_heuristics']
    assert obj['__author__'] == 'dsc_mm' and obj['matching_heuristics'] is True
    assert list(obj['model']) == ['stem.conv1.weight', 'stem.conv1.norm.bias',
                                  'stem.conv1.norm.weight']
    # Only bfloat16 (which numpy lacks) is widened; other dtypes are kept.
    assert [v.dtype for v in obj['model'].values()] == [np.float32, np.float64, np.float16]


def test_a_broken_detectron2_rename_is_caught_on_the_anchor_names(monkeypatch):
    import dsc_mm.transfer.detectron2 as d2
    monkeypatch.setattr(d2, 'rename_key', lambda key: key.replace('downsample.0', 'shortcut'))
    assert 'layer1.0.bn1.weight' in d2.detectron2_shapes(18)  # no anchors below R50
    with pytest.raises(RuntimeError) as err:
        d2.detectron2_shapes(50)
    assert str(err.value).startswith("The detectron2 rename lost the canonical R50 names "
                                     "['stem.conv1.weight', ")
    assert str(err.value).endswith('; dsc_mm.transfer.detectron2.rename_key is broken.')


def test_detectron2_config_settings_by_depth():
    settings = ('MODEL.BACKBONE.FREEZE_AT 0\nMODEL.RESNETS.NORM SyncBN\n'
                'MODEL.RESNETS.STRIDE_IN_1X1 False\nMODEL.PIXEL_MEAN [123.675, 116.28, 103.53]\n'
                'MODEL.PIXEL_STD [58.395, 57.12, 57.375]\nINPUT.FORMAT RGB')
    assert config_settings(50) == 'MODEL.RESNETS.DEPTH 50\n' + settings
    assert config_settings(34) == ('MODEL.RESNETS.DEPTH 34\nMODEL.RESNETS.RES2_OUT_CHANNELS 64\n'
                                   + settings)


def test_check_paths(tmp_path):
    src = tmp_path / 'in.pth'
    src.write_bytes(b'x')
    check_paths(str(src), str(tmp_path / 'out.pth'))  # a new output is fine
    other = tmp_path / 'other.pth'
    other.write_bytes(b'x')
    check_paths(str(src), str(other))  # an existing, different file too
    with pytest.raises(CheckpointError) as err:
        check_paths(str(tmp_path), str(other))
    assert str(err.value) == (f'{tmp_path} is a directory; pass the checkpoint file inside it '
                              f'(e.g. {tmp_path}/iter_N.pth) as SRC.')
    missing = str(tmp_path / 'missing.pth')  # refused by name even before it exists
    with pytest.raises(CheckpointError, match='is the input checkpoint'):
        check_paths(missing, missing)
    os.link(src, tmp_path / 'hard.pth')
    for dst in (src, tmp_path / '.' / 'in.pth', tmp_path / 'hard.pth'):
        with pytest.raises(CheckpointError) as err:
            check_paths(str(src), str(dst))
        assert str(err.value).startswith(f'The output {dst} is the input checkpoint {src}; ')


def test_convert_writes_the_backbone_and_says_what_it_did(tmp_path):
    tv = torchvision.models.resnet18(weights=None).state_dict()
    src = tmp_path / 'r18.pth'
    torch.save(tv, src)
    with pytest.raises(CheckpointError) as err:
        convert_checkpoint(str(src), str(tmp_path / 'r18.pth.d2'), 'detectron2')
    assert str(err.value) == (f'detectron2 reads converted weights only from a .pkl file; '
                              f'name the output {tmp_path}/r18.pth.pkl instead of '
                              f'{tmp_path}/r18.pth.d2.')
    summary = convert_checkpoint(str(src), str(tmp_path / 'out.pth'), 'mmdet')
    assert summary == (f'Converted 120 tensors of the query encoder of {src} (ResNet-18, keys and '
                       f"shapes equal to the mmdet ResNet-18 (style='pytorch') backbone) into "
                       f'{tmp_path}/out.pth.')
    summary = convert_checkpoint(str(src), str(tmp_path / 'out.pkl'), 'detectron2')
    assert summary.split('\n')[0].endswith('equal to the detectron2 R-18 backbone) into '
                                           f'{tmp_path}/out.pkl.')
    assert summary.split('\n')[1] == ('Use these detectron2 config settings with it '
                                      '(torchvision-style weights):')
    assert summary.split('\n', 2)[2] == config_settings(18)
    with open(tmp_path / 'out.pkl', 'rb') as f:
        assert f.read(2) == bytes([0x80, pickle.HIGHEST_PROTOCOL])  # the newest protocol
    with open(tmp_path / 'out.pkl', 'rb') as f:
        assert len(pickle.load(f)['model']) == 120
    # The requested depth reaches the check: a ResNet-18 file is no ResNet-50 backbone.
    with pytest.raises(CheckpointError, match='holds a ResNet-18 backbone but the target is '
                                              'ResNet-50'):
        convert_checkpoint(str(src), str(tmp_path / 'r50.pth'), 'mmdet', depth=50)
    assert not (tmp_path / 'r50.pth').exists()
    out = torch.load(tmp_path / 'out.pth', weights_only=True)
    assert list(out) == [k for k in tv if not k.startswith('fc.')]
    assert all(torch.equal(out[k], tv[k]) for k in out)


def _saved(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


def test_load_and_convert_name_the_file_and_the_depth_in_their_refusals(tmp_path):
    from dsc_mm.transfer.keys import load_backbone
    r18 = torchvision.models.resnet18(weights=None).state_dict()
    src = _saved(tmp_path, 'r18.pth', r18)
    backbone, depth = load_backbone(src)  # the query encoder by default
    assert depth == 18 and list(backbone) == [k for k in r18 if not k.startswith('fc.')]
    assert convert_backbone(src, 'mmdet')[1] == 18
    for call in (lambda: load_backbone(src, depth=50),
                 lambda: convert_backbone(src, 'mmdet', depth=50)):
        with pytest.raises(CheckpointError) as err:
            call()
        assert str(err.value) == (f'{src} holds a ResNet-18 backbone but the target is '
                                  f'ResNet-50; pass a ResNet-50 checkpoint or a target of depth '
                                  f'18 (--depth 18).')
    with pytest.raises(CheckpointError, match=r'\(model.backbone.depth=18\)\.$'):
        load_backbone(src, depth=50, option='model.backbone.depth=')
    short = _saved(tmp_path, 'short.pth', {k: v for k, v in r18.items()
                                           if not k.startswith('layer4.1.')})
    with pytest.raises(CheckpointError) as err:
        load_backbone(short)
    assert str(err.value).startswith(f'{short}: the backbone has [2, 2, 2, 1] blocks')
    neck = _saved(tmp_path, 'neck.pth', {'neck.w': torch.zeros(1)})
    with pytest.raises(CheckpointError) as err:
        load_backbone(neck)
    assert str(err.value).startswith(f'{neck} contains no ResNet backbone')
    wrong = _saved(tmp_path, 'wrong.pth', dict(r18, **{'conv1.weight': torch.zeros(64, 3, 3, 3)}))
    for to, name in (('mmdet', "mmdet ResNet-18 (style='pytorch')"),
                     ('detectron2', 'detectron2 R-18')):
        with pytest.raises(CheckpointError) as err:
            convert_backbone(wrong, to)
        assert str(err.value).startswith(f'{wrong} does not match the {name} backbone: 1 key '
                                         f'with the wrong shape')


def _conv_geometry(block) -> tuple:
    """((stride, dilation) of conv1, (stride, dilation) of conv2) of a BasicBlock."""
    return tuple((conv.stride[0], conv.dilation[0]) for conv in (block.conv1, block.conv2))


def test_reference_backbones_are_the_protocols_own_models():
    """Names and shapes do not depend on strides or dilations, so the key tests above cannot
    tell a D8 reference from a plain one: the docstring's models are pinned here."""
    from dsc_mm.transfer.targets import build_reference_backbone
    mmdet = build_reference_backbone('mmdet', 18)
    # pytorch style: the stride of a downsampling block sits in its first 3x3 conv.
    assert mmdet.style == 'pytorch'
    assert [_conv_geometry(getattr(mmdet, f'layer{i}')[0]) for i in range(1, 5)] == [
        ((1, 1), (1, 1)), ((2, 1), (1, 1)), ((2, 1), (1, 1)), ((2, 1), (1, 1))]
    mmseg = build_reference_backbone('mmseg', 18)
    # The FCN protocol's D8: C4 and C5 keep stride 8, dilated 2 and 4 (mmseg dilates a
    # BasicBlock's first 3x3 conv only); contract_dilation halves the dilation of each
    # dilated stage's first block. Each conv below is (stride, dilation).
    assert (mmseg.strides, mmseg.dilations, mmseg.contract_dilation) == (
        (1, 2, 1, 1), (1, 1, 2, 4), True)
    assert [[_conv_geometry(block) for block in getattr(mmseg, f'layer{i}')]
            for i in range(1, 5)] == [
        [((1, 1), (1, 1)), ((1, 1), (1, 1))],
        [((2, 1), (1, 1)), ((1, 1), (1, 1))],
        [((1, 1), (1, 1)), ((1, 2), (1, 1))],
        [((1, 2), (1, 1)), ((1, 4), (1, 1))]]
