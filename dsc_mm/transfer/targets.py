"""The key sets a converted backbone must match, taken from real models of each framework.

The strict check compares names AND shapes with a model built by the target framework itself,
so a renamed stem (mmseg's deep-stem ``ResNetV1c``), a missing stage or a wrong depth is an
error before training, not a ``strict=False`` warning lost in the log.
"""
import re
from typing import Dict, Iterable, Tuple

import torch
from torch import nn

from ..utils import CheckpointError

TARGETS = ('mmdet', 'mmseg', 'torchvision', 'detectron2')

Shapes = Dict[str, Tuple[int, ...]]


def build_reference_backbone(target: str, depth: int) -> nn.Module:
    """Build the backbone a converted checkpoint is loaded into, on the meta device.

    Args:
        target (str): ``'mmdet'`` (``ResNet``, pytorch style), ``'mmseg'`` (plain-stem
            ``ResNet`` with the D8 strides/dilations of the FCN protocol) or ``'torchvision'``.
        depth (int): ResNet depth.

    Returns:
        nn.Module: The model; its parameters are meta tensors (names and shapes only).
    """
    # Meta tensors carry names and shapes without memory or initialisation cost (a
    # ResNet-101 builds in milliseconds).
    with torch.device('meta'):
        if target == 'mmdet':
            from mmdet.models.backbones import ResNet
            return ResNet(depth=depth, style='pytorch')
        if target == 'mmseg':
            from mmseg.models.backbones import ResNet
            return ResNet(depth=depth, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                          contract_dilation=True)
        if target == 'torchvision':
            import torchvision
            return getattr(torchvision.models, f'resnet{depth}')(weights=None)
    raise CheckpointError(f"Unknown conversion target '{target}'; use one of "
                          f"{', '.join(TARGETS)}.")


def state_dict_shapes(module: nn.Module, exclude: Iterable[str] = ()) -> Shapes:
    """``{key: shape}`` of ``module.state_dict()``, without keys starting with ``exclude``."""
    exclude = tuple(exclude)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()
            if not (exclude and k.startswith(exclude))}


def reference_shapes(target: str, depth: int) -> Shapes:
    """Key set and shapes of the ``target`` backbone of ``depth`` (torchvision names).

    ``fc.*`` (torchvision's classifier) is not part of a backbone.
    """
    return state_dict_shapes(build_reference_backbone(target, depth), exclude=('fc.', ))


def _keys(keys) -> str:
    return f'{len(keys)} key' + ('' if len(keys) == 1 else 's')


def _first(keys, limit: int = 5) -> str:
    keys = sorted(keys)
    return ', '.join(keys[:limit]) + (', ...' if len(keys) > limit else '')


def check_against(converted: Dict[str, torch.Tensor], expected: Shapes, path: str,
                  target: str) -> None:
    """Require the converted key set and shapes to equal ``expected`` exactly.

    Args:
        converted (dict): ``{key: tensor}`` about to be written or loaded.
        expected (dict): ``{key: shape}`` of the target model.
        path (str): The source file, for the message.
        target (str): What it is checked against, e.g. ``'mmdet ResNet-50'``.

    Raises:
        CheckpointError: Naming the first missing / unexpected / mis-shaped keys and counts.
    """
    missing = set(expected) - set(converted)
    unexpected = set(converted) - set(expected)
    problems = []
    if missing:
        problems.append(f'{_keys(missing)} missing ({_first(missing)})')
    if unexpected:
        problems.append(f'{_keys(unexpected)} unexpected ({_first(unexpected)})')
    wrong = {k for k in set(expected) & set(converted)
             if tuple(converted[k].shape) != tuple(expected[k])}
    if wrong:
        k = sorted(wrong)[0]
        problems.append(f'{_keys(wrong)} with the wrong shape (e.g. {k}: '
                        f'{tuple(converted[k].shape)} in the file, {tuple(expected[k])} in the '
                        f'model)')
    if not problems:
        return
    advice = 'pass a checkpoint of that architecture'
    if any(re.match(r'stem\.\d', k) for k in missing):
        advice = ("the target has a deep stem ('stem.*' of ResNetV1c/V1d) but self-supervised "
                  "ResNets have the plain 7x7 stem, so use type='ResNet' in the config")
    raise CheckpointError(f'{path} does not match the {target} backbone: '
                          f'{"; ".join(problems)}; {advice}.')
