"""Rename a torchvision-keyed ResNet for detectron2 and describe the config it needs.

The rename is the one of MoCo's and DenseCL's ``convert-pretrain-to-detectron2.py``: stem keys get
``stem.``, ``layerN`` becomes ``res(N+1)``, ``bnK`` becomes ``convK.norm`` and the projection
shortcut ``downsample.0/1`` becomes ``shortcut`` / ``shortcut.norm``. The file is a pickle of
``{"model": {name: numpy array}, "__author__": ..., "matching_heuristics": True}``: without
``__author__`` detectron2 takes a ``.pkl`` for a Caffe2 blob file and renames it wrongly, and
``matching_heuristics`` lets it place res5 under ``roi_heads.res5`` in C4 models.
"""
import re
from collections import OrderedDict
from typing import Dict

import torch

from .targets import Shapes, reference_shapes

AUTHOR = 'dsc_mm'

#: Names detectron2's own ``build_resnet_backbone`` gives an R50 (``stem.conv1`` with a
#: ``norm`` child, ``res2``..``res5`` stages, ``shortcut`` convs): the derived key list must
#: contain them, which guards the rename against drifting from detectron2.
R50_ANCHORS = (
    'stem.conv1.weight', 'stem.conv1.norm.weight', 'stem.conv1.norm.running_var',
    'res2.0.conv1.weight', 'res2.0.conv1.norm.bias', 'res2.0.conv3.norm.running_mean',
    'res2.0.shortcut.weight', 'res2.0.shortcut.norm.weight', 'res3.3.conv2.weight',
    'res4.5.conv3.norm.bias', 'res5.0.shortcut.norm.running_var', 'res5.2.conv3.weight',
)

#: Settings a torchvision-style backbone needs in a detectron2 config (RGB input in 0..255
#: normalised with torchvision's statistics, stride in the 3x3 conv, synchronised BN trained
#: from the first layer on).
CONFIG_SETTINGS = (
    ('MODEL.BACKBONE.FREEZE_AT', '0'),
    ('MODEL.RESNETS.NORM', 'SyncBN'),
    ('MODEL.RESNETS.STRIDE_IN_1X1', 'False'),
    ('MODEL.PIXEL_MEAN', '[123.675, 116.28, 103.53]'),
    ('MODEL.PIXEL_STD', '[58.395, 57.12, 57.375]'),
    ('INPUT.FORMAT', 'RGB'),
)


def rename_key(key: str) -> str:
    """Map one torchvision ResNet key to its detectron2 name.

    Example:
        ``layer1.0.downsample.1.running_mean`` -> ``res2.0.shortcut.norm.running_mean``.
    """
    if not key.startswith('layer'):
        key = 'stem.' + key
    key = re.sub(r'^layer(\d)', lambda m: f'res{int(m.group(1)) + 1}', key)
    key = re.sub(r'(^|\.)bn(\d)\.', r'\1conv\2.norm.', key)
    key = key.replace('downsample.0', 'shortcut').replace('downsample.1', 'shortcut.norm')
    return key


def detectron2_shapes(depth: int) -> Shapes:
    """The detectron2 backbone key set of a ResNet of ``depth`` (names and shapes).

    Derived by :func:`rename_key` from torchvision's ``resnet{depth}``; for R50 the result is
    checked against detectron2 names written down independently (:data:`R50_ANCHORS`).
    """
    shapes = {rename_key(k): v for k, v in reference_shapes('torchvision', depth).items()}
    if depth == 50:
        absent = [k for k in R50_ANCHORS if k not in shapes]
        if absent:
            raise RuntimeError(f'The detectron2 rename lost the canonical R50 names {absent}; '
                               f'dsc_mm.transfer.detectron2.rename_key is broken.')
    return shapes


def to_detectron2(backbone: Dict[str, torch.Tensor]) -> dict:
    """Build the detectron2 checkpoint object from a torchvision-keyed backbone.

    Args:
        backbone (dict): ``{torchvision key: tensor}``.

    Returns:
        dict: ``{"model": {detectron2 key: np.ndarray}, "__author__": "dsc_mm",
        "matching_heuristics": True}``, ready for :func:`pickle.dump`.
    """
    # numpy has no bfloat16: such weights are stored as float32.
    model = OrderedDict((rename_key(k), (v.float() if v.dtype == torch.bfloat16 else v)
                         .detach().cpu().numpy()) for k, v in backbone.items())
    return {'model': model, '__author__': AUTHOR, 'matching_heuristics': True}


def config_settings(depth: int) -> str:
    """The detectron2 config lines to use with the converted file, one ``KEY VALUE`` a line."""
    lines = [f'MODEL.RESNETS.DEPTH {depth}']
    if depth < 50:
        # detectron2's BasicBlock ResNets need res2 at 64 channels (its default is 256).
        lines.append('MODEL.RESNETS.RES2_OUT_CHANNELS 64')
    lines += [f'{key} {value}' for key, value in CONFIG_SETTINGS]
    return '\n'.join(lines)

