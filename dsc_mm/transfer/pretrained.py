"""``tools/train.py --pretrained PATH``: initialise a downstream model from a pretrained backbone.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only warns about missing keys, so a
wrong stem or a missing stage would silently stay random. Here the file is checked against the
config's own backbone (names and shapes) before training, and :class:`PretrainedCheckHook`
verifies after initialisation that every converted tensor really is in the model.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODELS, DefaultScope
from torch import nn

from ..utils import CheckpointError, load_checkpoint_file, save_backbone
from .keys import extract_backbone, get_state_dict, load_backbone
from .targets import Shapes, check_against, state_dict_shapes

#: ``--pretrained random``: no pretrained weights (the random-init baseline).
RANDOM = 'random'


def _stage_prefix(shared_head) -> str:
    """mmdet's ``ResLayer`` shared head names its stage module ``layer{stage + 1}``."""
    return f'layer{shared_head.get("stage", 3) + 1}.'


def _pretrained_parts(model_cfg) -> List[Tuple[str, dict, Optional[str]]]:
    """The config dicts that take weights from the backbone file.

    Returns:
        list: ``(name, cfg, prefix)``; ``prefix`` limits the module's keys that come from the
        file (the C4 shared head's ``layer4.*``; its extra norm, if any, is new).
    """
    parts = [('backbone', model_cfg['backbone'], None)]
    shared_head = (model_cfg.get('roi_head') or {}).get('shared_head')
    if shared_head:
        parts.append(('roi_head.shared_head', shared_head, _stage_prefix(shared_head)))
    return parts


def config_shapes(cfg) -> Dict[str, Shapes]:
    """Names and shapes the pretrained file must provide for the model of ``cfg``.

    Builds the config's backbone (and C4 shared head) with the registry of its
    ``default_scope``, on the meta device (names and shapes only, no memory).

    Returns:
        dict: ``{part: {key: shape}}`` for ``'backbone'`` and ``'roi_head.shared_head'``.
    """
    shapes = {}
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        for name, part_cfg, prefix in _pretrained_parts(cfg.model):
            part_cfg = copy.deepcopy(part_cfg)
            part_cfg.pop('init_cfg', None)
            part_cfg.pop('pretrained', None)
            with torch.device('meta'):
                module = MODELS.build(part_cfg)
            shapes[name] = {k: v for k, v in state_dict_shapes(module).items()
                            if prefix is None or k.startswith(prefix)}
    return shapes


def _set_init(model_cfg, checkpoint: Optional[str]) -> None:
    for name, part_cfg, _ in _pretrained_parts(model_cfg):
        # mmdet/mmseg ResNet refuse ``pretrained`` together with ``init_cfg``.
        part_cfg.pop('pretrained', None)
        part_cfg.pop('init_cfg', None)
        if checkpoint is not None:
            part_cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint,
                                        prefix=f'{name}.')


def apply_pretrained(cfg, path: str, encoder: str = 'query') -> Optional[str]:
    """Make ``cfg`` initialise its backbone (and C4 shared head) from ``path``, in place.

    The weights are checked against the config's own backbone, then written to
    ``{work_dir}/pretrained/{name}_{encoder}.pth`` as ``backbone.*`` (and
    ``roi_head.shared_head.layer4.*``) tensors; each part gets
    ``init_cfg=dict(type='Pretrained', checkpoint=that file, prefix='<part>.')``. Every part
    thus loads exactly its own tensors, without the walls of "unexpected key" warnings a
    shared whole-backbone file gives a C4 detector. A ``PretrainedCheckHook`` is added to
    ``custom_hooks`` to verify the loaded model before the first iteration.

    Args:
        cfg (mmengine.Config): A downstream config (mmdet, mmseg or mmpretrain scope); call
            this after ``cfg.work_dir`` is set.
        path (str): ``'random'`` for random initialisation, a converted backbone
            (torchvision keys, e.g. from ``tools/convert_checkpoint.py``), or an mmpretrain
            pretraining checkpoint.
        encoder (str): Encoder of a pretraining checkpoint: ``'query'`` or ``'key'``.

    Returns:
        str | None: The file the model loads (None for ``'random'``).

    Raises:
        CheckpointError: The file is unreadable, not a backbone, of another depth, or its
            names/shapes differ from the config's backbone.
    """
    model_cfg = cfg.model
    if not model_cfg.get('backbone'):
        raise CheckpointError(f'--pretrained needs a model with a backbone, but the model of '
                              f'{getattr(cfg, "filename", None) or "the config"} has none.')
    if model_cfg.get('pretrained') is not None or cfg.get('default_scope') == 'mmseg':
        # mmseg's EncoderDecoder pushes ``model.pretrained`` into the backbone, where it
        # would clash with (or replace) the init_cfg set here.
        model_cfg['pretrained'] = None
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', None) or []
                        if h.get('type') != 'PretrainedCheckHook']
    if path == RANDOM:
        _set_init(model_cfg, None)
        return None

    backbone, _ = load_backbone(path, encoder, model_cfg.backbone.get('depth'),
                                option='model.backbone.depth=')
    name = osp.basename(cfg.filename) if getattr(cfg, 'filename', None) else 'config'
    part_shapes = config_shapes(cfg)
    check_against(backbone, {k: v for shapes in part_shapes.values() for k, v in shapes.items()},
                  path, f'{name} model')

    work_dir = cfg.get('work_dir') or osp.join('./work_dirs', osp.splitext(name)[0])
    used = osp.join(work_dir, 'pretrained',
                    f'{osp.splitext(osp.basename(path))[0]}_{encoder}.pth')
    # Every process of a distributed run writes the same bytes; the atomic replace makes
    # that safe without a barrier.
    save_backbone({f'{part}.{key}': backbone[key]
                   for part, shapes in part_shapes.items() for key in shapes}, used)
    _set_init(model_cfg, used)
    cfg.custom_hooks.append(dict(type='PretrainedCheckHook', checkpoint=used))
    return used


def _model_parts(model: nn.Module) -> List[Tuple[str, nn.Module, Optional[str]]]:
    parts = [('backbone', model.backbone, None)]
    shared_head = getattr(getattr(model, 'roi_head', None), 'shared_head', None)
    if shared_head is not None:
        parts.append(('roi_head.shared_head', shared_head, f'layer{shared_head.stage + 1}.'))
    return parts


def check_loaded(model: nn.Module, path: str) -> int:
    """Verify that every tensor of ``path`` is in ``model``, unchanged.

    Call it after ``model.init_weights()`` and before any training step (BN statistics and
    weights move afterwards).

    Args:
        model (nn.Module): A detector/segmentor/classifier with ``.backbone`` (and optionally
            ``.roi_head.shared_head``), possibly wrapped (DDP).
        path (str): The file written by :func:`apply_pretrained` (``backbone.*`` /
            ``roi_head.shared_head.*`` keys) or a converted backbone (torchvision keys).

    Returns:
        int: The number of tensors verified.

    Raises:
        CheckpointError: Naming the first model tensors that differ from the file or are not
            in it, and the file tensors no module took.
    """
    if is_model_wrapper(model):
        model = model.module
    state = load_checkpoint_file(path)
    per_part = any(k.startswith('backbone.') for k in get_state_dict(state, path))
    state = get_state_dict(state, path) if per_part else extract_backbone(state, path)
    differ, absent, used = [], [], set()
    for name, module, prefix in _model_parts(model):
        for key, tensor in module.state_dict().items():
            if prefix is not None and not key.startswith(prefix):
                continue  # e.g. the C4 head's extra norm, new in the downstream model
            file_key = f'{name}.{key}' if per_part else key
            if file_key not in state:
                absent.append(f'{name}.{key}')
                continue
            used.add(file_key)
            expected = state[file_key].to(device=tensor.device, dtype=tensor.dtype)
            if not torch.equal(tensor, expected):
                differ.append(f'{name}.{key}')
    unused = sorted(set(state) - used)
    if differ or absent or unused:
        parts = [f'{len(items)} {what} (e.g. {", ".join(items[:3])})'
                 for items, what in ((differ, 'model tensors differ from the file'),
                                     (absent, 'model tensors are not in the file'),
                                     (unused, 'file tensors were loaded into no module'))
                 if items]
        raise CheckpointError(f'The model was not initialised from {path}: {"; ".join(parts)}; '
                              f'pass the checkpoint with --pretrained (tools/train.py) so that '
                              f'the init_cfg of the config points to it.')
    return len(used)


@HOOKS.register_module()
class PretrainedCheckHook(Hook):
    """Fail before the first iteration if the pretrained backbone was not fully loaded.

    Added to ``custom_hooks`` by :func:`apply_pretrained`. Registered in mmengine's root
    registry because the same hook serves mmdet, mmseg and mmpretrain runners, whose
    registries all fall back to the root.

    Args:
        checkpoint (str): The backbone file set as ``init_cfg``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = checkpoint

    def before_train(self, runner) -> None:
        if getattr(runner, '_has_loaded', False):
            # Resumed or ``load_from``: the weights come from that checkpoint instead.
            runner.logger.info('PretrainedCheckHook: weights were loaded from a checkpoint '
                               f'(resume/load_from), not checked against {self.checkpoint}.')
            return
        count = check_loaded(runner.model, self.checkpoint)
        runner.logger.info(f'PretrainedCheckHook: all {count} backbone tensors of '
                           f'{self.checkpoint} are in the model.')
