"""Convert a pretraining checkpoint into a backbone for mmdet, mmseg, torchvision or detectron2.

Used by ``tools/convert_checkpoint.py`` and by :func:`dsc_mm.transfer.apply_pretrained`.
"""
import os
import pickle
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

import torch

from ..utils import CheckpointError, atomic_file, load_checkpoint_file
from .detectron2 import config_settings, detectron2_shapes, rename_key, to_detectron2
from .keys import check_depth, detect_depth, extract_backbone
from .targets import TARGETS, check_against, reference_shapes

#: How each target is named in messages (what the key set was compared with).
TARGET_NAMES = {
    'mmdet': "mmdet ResNet-{depth} (style='pytorch')",
    'mmseg': 'mmseg ResNet-{depth} (plain stem, D8 dilations)',
    'torchvision': 'torchvision resnet{depth}',
    'detectron2': 'detectron2 R-{depth}',
}


def convert_backbone(checkpoint, path: str, to: str, encoder: str = 'query',
                     depth: Optional[int] = None) -> Tuple['OrderedDict[str, torch.Tensor]', int]:
    """Extract, depth-check and strictly validate the backbone of a loaded checkpoint.

    Args:
        checkpoint: A loaded checkpoint (mmpretrain pretraining checkpoint or a backbone).
        path (str): Its file, for messages.
        to (str): One of :data:`TARGETS`.
        encoder (str): ``'query'`` or ``'key'`` (the EMA key encoder).
        depth (int, optional): Required depth; detected from the block counts when None.

    Returns:
        tuple: ``(backbone, depth)`` with ``backbone`` = ``{torchvision key: tensor}`` whose
        key set and shapes equal the target's.

    Raises:
        CheckpointError: Anything that would make the converted file wrong or incomplete.
    """
    if to not in TARGETS:
        raise CheckpointError(f"Unknown conversion target '{to}'; use one of {', '.join(TARGETS)}.")
    backbone = extract_backbone(checkpoint, path, encoder)
    depth = check_depth(detect_depth(backbone, path), depth, path)
    name = TARGET_NAMES[to].format(depth=depth)
    if to == 'detectron2':
        check_against({rename_key(k): v for k, v in backbone.items()},
                      detectron2_shapes(depth), path, name)
    else:
        check_against(backbone, reference_shapes(to, depth), path, name)
    # Own storage per tensor: a view would make torch.save write its whole base storage.
    backbone = OrderedDict((k, v.detach().clone()) for k, v in backbone.items())
    return backbone, depth


def atomic_write(dst: str, write: Callable) -> None:
    """Write ``dst`` through :func:`dsc_mm.utils.atomic_file`, creating its directory.

    Readers never see a partial file, and a failure (or Ctrl-C) leaves no ``dst`` behind.

    Args:
        dst (str): Final path; missing parent directories are created.
        write (callable): ``write(file_object)`` writes the content.
    """
    if os.path.isdir(dst):
        raise CheckpointError(f'{dst} is a directory; pass a file name as DST.')
    try:
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        with atomic_file(dst, 'wb') as file:
            write(file)
    except OSError as exc:
        raise CheckpointError(f'Could not write {dst} ({exc.strerror or exc}); check that its '
                              f'directory is writable and has free space.') from None


def save_backbone(backbone: Dict[str, torch.Tensor], dst: str) -> None:
    """Atomically save a plain ``{key: tensor}`` dict (``torch.load(weights_only=True)``-safe)."""
    atomic_write(dst, lambda file: torch.save(dict(backbone), file))


def check_paths(src: str, dst: str) -> None:
    """Refuse a source that is a directory and an output that would overwrite the source.

    Converting keeps only the backbone: writing it over ``src`` would lose the pretraining
    checkpoint (its heads, queues, optimizer state and meta) for good.

    Raises:
        CheckpointError: One sentence naming the path and what to pass instead.
    """
    if os.path.isdir(src):
        raise CheckpointError(f'{src} is a directory; pass the checkpoint file inside it '
                              f'(e.g. {os.path.join(src, "iter_N.pth")}) as SRC.')
    same = os.path.realpath(src) == os.path.realpath(dst)
    if not same and os.path.exists(src) and os.path.exists(dst):
        same = os.path.samefile(src, dst)  # a hard link to the source
    if same:
        raise CheckpointError(f'The output {dst} is the input checkpoint {src}; converting '
                              f'keeps only the backbone, so writing it there would lose the '
                              f'pretraining checkpoint: pass another output name.')


def convert_checkpoint(src: str, dst: str, to: str, encoder: str = 'query',
                       depth: Optional[int] = None) -> str:
    """Convert the file ``src`` into ``dst`` for the framework ``to``.

    Args:
        src (str): mmpretrain pretraining checkpoint or a torchvision-keyed backbone.
        dst (str): Output path (``.pkl`` for detectron2). Written atomically.
        to (str): ``'mmdet'``, ``'mmseg'``, ``'torchvision'`` or ``'detectron2'``.
        encoder (str): ``'query'`` or ``'key'``.
        depth (int, optional): Expected ResNet depth; a checkpoint of another depth is refused.

    Returns:
        str: A summary for the user (for detectron2 with the config settings it needs).

    Raises:
        CheckpointError: One sentence saying what was wrong, with which file, what to do.
    """
    check_paths(src, dst)
    if to == 'detectron2' and not dst.endswith('.pkl'):
        # detectron2's DetectionCheckpointer reads the pickle layout only from '.pkl' files.
        raise CheckpointError(f'detectron2 reads converted weights only from a .pkl file; '
                              f'name the output {os.path.splitext(dst)[0]}.pkl instead of {dst}.')
    checkpoint = load_checkpoint_file(src)
    backbone, depth = convert_backbone(checkpoint, src, to, encoder, depth)
    if to == 'detectron2':
        obj = to_detectron2(backbone)
        atomic_write(dst, lambda file: pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL))
    else:
        save_backbone(backbone, dst)
    target = TARGET_NAMES[to].format(depth=depth)
    summary = (f'Converted {len(backbone)} tensors of the {encoder} encoder of {src} '
               f'(ResNet-{depth}, keys and shapes equal to the {target} backbone) into {dst}.')
    if to == 'detectron2':
        summary += ('\nUse these detectron2 config settings with it (torchvision-style '
                    'weights):\n' + config_settings(depth))
    return summary
