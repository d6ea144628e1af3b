"""Find the ResNet backbone inside a checkpoint and name its tensors the torchvision way.

Accepted inputs (see ``docs/transfer.md``, section "Conversion"):

- an mmpretrain pretraining checkpoint (DSC, DenseCL, MoCo v2): ``state_dict`` holds
  ``backbone.*`` (query encoder), ``neck.*``, ``encoder_k.module.0.*`` (the EMA key encoder's
  backbone), ``encoder_k.module.1.*`` (its neck), ``encoder_k.steps`` and the queues;
- an already-extracted backbone with torchvision keys (``conv1.weight``, ``layer1.0.bn1.*``),
  at the top level or under ``state_dict``; a torchvision classifier's ``fc.*`` is dropped.

torchvision, mmpretrain, mmdet and mmseg (plain stem) ``ResNet`` share these key names, so the
torchvision naming is the project's interchange format.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from ..utils import CheckpointError, load_checkpoint_file

#: Where each encoder's backbone lives in an mmpretrain pretraining checkpoint.
ENCODER_PREFIXES = {'query': 'backbone.', 'key': 'encoder_k.module.0.'}

#: Key prefixes of downstream models (detectors, segmentors): converting one of them back
#: would silently hand a fine-tuned backbone to a transfer benchmark.
DOWNSTREAM_PREFIXES = ('roi_head.', 'rpn_head.', 'bbox_head.', 'mask_head.', 'decode_head.',
                       'auxiliary_head.', 'roi_heads.', 'proposal_generator.')

# A torchvision-named ResNet backbone tensor (the classifier ``fc`` is not part of it).
_BACKBONE_KEY = re.compile(r'^(conv1\.|bn1\.|layer[1-4]\.)')


def _top_prefixes(keys, limit: int = 6) -> str:
    """Summarise ``keys`` by their first component, e.g. ``"keys under model, optimizer"``."""
    heads = list(dict.fromkeys(str(k).split('.')[0] for k in keys))
    if not heads:
        return 'no keys'
    more = f' and {len(heads) - limit} more' if len(heads) > limit else ''
    return 'keys under ' + ', '.join(heads[:limit]) + more


def get_state_dict(checkpoint, path: str) -> Dict[str, torch.Tensor]:
    """Return the tensor dict of a loaded checkpoint (its ``state_dict`` when it has one).

    Args:
        checkpoint: What :func:`dsc_mm.utils.load_checkpoint_file` returned.
        path (str): The file, for error messages.

    Raises:
        CheckpointError: The file holds no dict of tensors.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict; pass an '
            f'mmpretrain pretraining checkpoint or a backbone state dict saved with torch.save.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, not a "
                              f'dict of tensors; pass a checkpoint saved by mmengine or '
                              f'torch.save.')
    return state_dict


def extract_backbone(checkpoint, path: str,
                     encoder: str = 'query') -> 'OrderedDict[str, torch.Tensor]':
    """Return the backbone of ``encoder`` with torchvision key names.

    Args:
        checkpoint: A loaded checkpoint (see the module docstring for the accepted layouts).
        path (str): The file it came from, for error messages.
        encoder (str): ``'query'`` (the trained backbone) or ``'key'`` (the EMA key encoder).

    Returns:
        OrderedDict: ``{torchvision key: tensor}``, checkpoint order kept.

    Raises:
        CheckpointError: A detector/segmentor checkpoint, no backbone found, or ``encoder='key'``
            on a file without a key encoder.
    """
    if encoder not in ENCODER_PREFIXES:
        raise CheckpointError(f"--encoder must be 'query' or 'key', got '{encoder}'.")
    state_dict = get_state_dict(checkpoint, path)
    # A non-string key (a pickle may hold any) belongs to no prefix.
    names = [k for k in state_dict if isinstance(k, str)]
    downstream = sorted({p for p in DOWNSTREAM_PREFIXES for k in names if k.startswith(p)})
    if downstream:
        raise CheckpointError(
            f'{path} is a detector/segmentor checkpoint (it has {", ".join(downstream)} keys), '
            f'not a pretrained backbone; pass the self-supervised pretraining checkpoint '
            f'(with backbone.* and encoder_k.* keys) or a converted backbone instead.')

    prefix = ENCODER_PREFIXES[encoder]
    if any(k.startswith(prefix) for k in names):
        backbone = OrderedDict((k[len(prefix):], state_dict[k]) for k in names
                               if k.startswith(prefix))
    elif encoder == 'key':
        raise CheckpointError(
            f'{path} has no key encoder ({prefix}* keys): only mmpretrain pretraining '
            f'checkpoints of momentum methods (DSC, DenseCL, MoCo v2) have one; use '
            f'--encoder query.')
    else:
        # Already extracted: torchvision names at the top level (``fc.*`` dropped).
        backbone = OrderedDict((k, state_dict[k]) for k in names if _BACKBONE_KEY.match(k))
    if not backbone:
        raise CheckpointError(
            f'{path} contains no ResNet backbone (found {_top_prefixes(state_dict)}); '
            f'pass an mmpretrain pretraining checkpoint (backbone.* keys) or a backbone state '
            f'dict with torchvision keys (conv1.weight, layer1.0.conv1.weight, ...).')
    not_tensors = [k for k, v in backbone.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f'{path}: backbone entry {not_tensors[0]} is a '
                              f'{type(backbone[not_tensors[0]]).__name__}, not a tensor; '
                              f'the file is not a weight checkpoint.')
    return backbone


def resnet_arch_settings():
    """``{depth: (expansion, blocks per stage)}`` from mmpretrain's ``ResNet``.

    Read from the source framework rather than restated, so the table cannot drift.
    """
    from mmpretrain.models.backbones.resnet import ResNet, get_expansion
    return {depth: (get_expansion(block), tuple(blocks))
            for depth, (block, blocks) in ResNet.arch_settings.items()}


def detect_depth(backbone: Dict[str, torch.Tensor], path: str) -> int:
    """Infer the ResNet depth of a torchvision-keyed backbone from its block counts.

    Args:
        backbone (dict): ``{torchvision key: tensor}``.
        path (str): The file, for error messages.

    Returns:
        int: 18, 34, 50, 101 or 152.

    Raises:
        CheckpointError: The layout matches no ResNet depth.
    """
    blocks = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in backbone
                   for m in [re.match(rf'^layer{stage}\.(\d+)\.', k)] if m}
        blocks.append(max(indices) + 1 if indices else 0)
    # BasicBlock has two convolutions, Bottleneck three.
    expansion = 4 if 'layer1.0.conv3.weight' in backbone else 1
    for depth, (exp, stage_blocks) in resnet_arch_settings().items():
        if exp == expansion and tuple(blocks) == stage_blocks:
            return depth
    raise CheckpointError(
        f'{path}: the backbone has {blocks} blocks per stage with '
        f'{"Bottleneck" if expansion == 4 else "BasicBlock"} blocks, which is no ResNet '
        f'depth (18, 34, 50, 101, 152); pass a ResNet checkpoint.')


def check_depth(detected: int, requested: Optional[int], path: str,
                option: str = '--depth ') -> int:
    """Return the depth to convert to, refusing a mismatch with the requested one.

    Args:
        detected (int): Depth found in the checkpoint (:func:`detect_depth`).
        requested (int, optional): Depth of the target; None accepts ``detected``.
        path (str): The file, for the message.
        option (str): Where the requested depth came from, for the message.
    """
    if requested is not None and int(requested) != detected:
        raise CheckpointError(
            f'{path} holds a ResNet-{detected} backbone but the target is ResNet-{requested}; '
            f'pass a ResNet-{requested} checkpoint or a target of depth {detected} '
            f'({option}{detected}).')
    return detected


def load_backbone(path: str, encoder: str = 'query', depth: Optional[int] = None,
                  option: str = '--depth ') -> 'Tuple[OrderedDict[str, torch.Tensor], int]':
    """Read the backbone of ``encoder`` from the file ``path`` and check its ResNet depth.

    The one way dsc_mm takes a backbone out of a file (conversion, ``--pretrained``, cluster
    figures): :func:`dsc_mm.utils.load_checkpoint_file`, :func:`extract_backbone`,
    :func:`detect_depth` and :func:`check_depth`.

    Args:
        path (str): An mmpretrain pretraining checkpoint or a torchvision-keyed backbone.
        encoder (str): ``'query'`` or ``'key'`` (the EMA key encoder).
        depth (int, optional): Required depth; None accepts the detected one.
        option (str): Where ``depth`` came from, for the mismatch message.

    Returns:
        tuple: ``(backbone, depth)``, ``backbone`` = ``{torchvision key: tensor}``.

    Raises:
        CheckpointError: Unreadable file, no backbone, or another depth than ``depth``.
    """
    backbone = extract_backbone(load_checkpoint_file(path), path, encoder)
    return backbone, check_depth(detect_depth(backbone, path), depth, path, option)
