"""One training entry point for every config of the project (pretraining, detection, segmentation).

``tools/train.py`` is a thin wrapper around :func:`merge_args` and :func:`build_runner`; the
config's ``default_scope`` (``mmpretrain``, ``mmdet`` or ``mmseg``) selects the framework, so one
command trains a DSC backbone and fine-tunes it downstream.
"""
import os.path as osp
from copy import deepcopy

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..compat import cpu_ddp_cfg, drop_collate_scope, init_cpu_distributed
from ..engine.hooks.dsc_schedule import ensure_schedule_hook
from .checks import add_reliability_hooks
from .determinism import pin_cpu_numerics

# default_scope -> the package whose registries the Runner must use.
SCOPES = {'mmpretrain': 'mmpretrain', 'mmdet': 'mmdet', 'mmseg': 'mmseg'}


def scope_of(cfg: Config, config_path: str = '') -> str:
    """Return the config's framework scope, or raise one clear error."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'Config {config_path or cfg.filename} has default_scope={scope!r}; '
                         f'dsc_mm trains configs whose default_scope is one of '
                         f'{sorted(SCOPES)}: set it in the config (or inherit an OpenMMLab base).')
    return scope


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line options of ``tools/train.py`` to ``cfg`` (in place; returned).

    ``args`` needs: ``config``, ``work_dir``, ``resume``, ``amp``, ``pretrained``, ``cfg_options``,
    ``launcher`` and ``no_validate``, optionally ``encoder`` (see ``tools/train.py --help``).
    """
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    add_reliability_hooks(cfg)  # NonFiniteLossHook, RNGStateHook (dsc_mm.engine.hooks)
    cfg.launcher = args.launcher
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    # --resume alone: the latest checkpoint of work_dir; --resume PATH: that file.
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    if getattr(args, 'no_validate', False):
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    encoder = getattr(args, 'encoder', None)
    if encoder is not None and args.pretrained is None:
        raise ValueError(f'--encoder {encoder} chooses the encoder of a --pretrained '
                         f'pretraining checkpoint; add --pretrained PATH.')
    if args.pretrained is not None:
        from ..transfer import apply_pretrained
        apply_pretrained(cfg, args.pretrained, encoder=encoder or 'query')

    # mmengine's init_dist('pytorch') needs CUDA; on CPU we create the gloo group ourselves.
    if init_cpu_distributed(args.launcher):
        cpu_ddp_cfg(cfg)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the Runner of the config's scope (``runner_type`` if the config names one).

    A DSC config always gets its ``DSCScheduleHook``, even when a derived config replaced
    ``custom_hooks``. The config's CPU thread count and instruction set (``cpu_numerics``,
    :mod:`dsc_mm.apis.determinism`) are applied first, before any kernel runs.
    """
    pin_cpu_numerics(cfg)
    cfg = deepcopy(cfg)
    drop_collate_scope(cfg)
    ensure_schedule_hook(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)

