"""Workarounds for known breakages of the pinned stack (torch 2.14 + mmengine 0.10.7 + mmcv 2.1).

Each workaround names its upstream issue and has a test in ``tests/test_compat.py`` that fails
when the workaround is removed. Everything here is applied by ``import dsc_mm``, which configs
trigger through ``custom_imports = dict(imports=['dsc_mm'])``. The safe-loading allowlist
lives with the loader in :mod:`dsc_mm.utils.checkpoint` and is re-exported here.
"""
import builtins
import functools
import os

import torch
import torch.distributed as torch_dist

from .utils.checkpoint import SAFE_GLOBALS, register_safe_globals  # noqa: F401 (re-exported)
from .utils.fileio import atomic_file


def init_cpu_distributed(launcher: str) -> bool:
    """Initialise a gloo process group for ``--launcher pytorch|slurm`` on a machine without CUDA.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` first and fails on CPU
    (``_init_dist_pytorch``; ``_init_dist_slurm`` divides by the GPU count). The Runner skips its
    own ``init_dist`` when a process group already exists, so we create one with gloo from
    torchrun's environment, or from Slurm's (``SLURM_PROCID``, ``SLURM_NTASKS``, the job's first
    node as master, ``MASTER_PORT`` or 29500), as mmengine's Slurm launch would.

    Returns:
        bool: True if this function created the process group.
    """
    if launcher not in ('pytorch', 'slurm') or torch.cuda.is_available() \
            or torch_dist.is_initialized():
        return False
    if launcher == 'slurm':
        if 'SLURM_PROCID' not in os.environ:
            raise RuntimeError('--launcher slurm needs the environment of a Slurm task '
                               '(SLURM_PROCID, SLURM_NTASKS); start it with srun or sbatch.')
        import subprocess
        nodes = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
                               capture_output=True, text=True, check=True).stdout.split()
        os.environ.setdefault('MASTER_ADDR', nodes[0])
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    elif 'RANK' not in os.environ:
        raise RuntimeError('--launcher pytorch needs the environment that torchrun sets (RANK, '
                           'WORLD_SIZE, MASTER_ADDR); start it with tools/dist_train.sh.')
    torch_dist.init_process_group(backend='gloo')
    return True


def cpu_ddp_cfg(cfg) -> None:
    """Make a config trainable with CPU DDP (gloo), in place.

    - ``model_wrapper_cfg.device_ids=None``: mmengine defaults ``device_ids`` to the local rank,
      which DDP rejects for CPU modules.
    - SyncBN -> BN: with a process group torch's ``SyncBatchNorm`` refuses CPU tensors and
      mmcv's ``MMSyncBN`` has no CPU kernel. Statistics become per
      process, which is the documented CPU limitation.
    """
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    cfg.model = revert_syncbn_cfg(cfg.model)
    # mmengine would convert BN back to SyncBN when ``sync_bn`` is set.
    cfg.pop('sync_bn', None)


def revert_syncbn_cfg(node):
    """Return ``node`` with every ``norm_cfg``/``type='SyncBN'`` replaced by ``'BN'``."""
    if isinstance(node, dict):
        out = type(node)()
        for key, value in node.items():
            if key == 'type' and value in ('SyncBN', 'MMSyncBN', 'NaiveSyncBN'):
                value = 'BN'
            out[key] = revert_syncbn_cfg(value)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(revert_syncbn_cfg(v) for v in node)
    return node


def drop_collate_scope(cfg) -> None:
    """Remove the ``_scope_`` key that cross-package bases leave in ``collate_fn``, in place.

    A config inheriting ``mmpretrain::...`` (or ``mmdet::``/``mmseg::``) gets ``_scope_`` added to
    every dict with a ``type``; mmengine 0.10.7's ``Runner.build_dataloader`` then passes it to
    the collate function as a keyword (``default_collate() got an unexpected keyword argument
    '_scope_'``). Collate functions live in mmengine's root FUNCTIONS registry, so the key
    carries no information.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        collate_fn = (cfg.get(field) or {}).get('collate_fn')
        if isinstance(collate_fn, dict):
            collate_fn.pop('_scope_', None)


def _atomic_put(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put`` through :func:`atomic_file`."""
    with atomic_file(filepath, 'wb', makedirs=True) as file:
        file.write(obj)


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    """``LocalBackend.put_text`` through :func:`atomic_file`."""
    with atomic_file(filepath, 'w', makedirs=True, encoding=encoding) as file:
        file.write(obj)


def _open_atomic_for_writing(file, mode='r', *args, **kwargs):
    """``open`` for mmengine's checkpoint_hook module: write modes go through atomic_file."""
    if 'w' in mode and isinstance(file, (str, bytes, os.PathLike)):
        return atomic_file(file, mode, *args, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


def make_checkpoint_writes_atomic() -> None:
    """Write checkpoints and ``last_checkpoint`` atomically (temp file + fsync + os.replace).

    mmengine 0.10.7 writes a checkpoint with ``LocalBackend.put`` (``runner/checkpoint.py``
    ``save_checkpoint``) and ``last_checkpoint`` with ``open(save_file, 'w')``
    (``CheckpointHook._save_checkpoint_with_step``), both opening the final path with
    truncation: a process killed (SIGKILL, OOM killer, preemption) during the write leaves a
    truncated ``iter_N.pth`` or an empty ``last_checkpoint``, and ``--resume`` then fails or
    silently restarts from scratch. Upstream has no atomic write (mmengine ``LocalBackend``
    has none up to 0.10.7). ``put``/``put_text`` are replaced for every local file, and the
    module-level ``open`` of ``mmengine.hooks.checkpoint_hook`` (it only opens
    ``last_checkpoint`` for writing) is shadowed by :func:`_open_atomic_for_writing`.
    """
    from mmengine.fileio.backends import LocalBackend
    from mmengine.hooks import checkpoint_hook
    LocalBackend.put = _atomic_put
    LocalBackend.put_text = _atomic_put_text
    checkpoint_hook.open = _open_atomic_for_writing


@functools.lru_cache(maxsize=16)
def _format_once(text: str, style: tuple) -> tuple:
    from yapf.yapflib import yapf_api
    return yapf_api.FormatCode(text, style_config=dict(style))


def _format_code(text, style_config=None, **kwargs):
    """mmengine's ``FormatCode`` call, from a cache when it is the same text and style."""
    if kwargs or not isinstance(style_config, dict):
        from yapf.yapflib import yapf_api
        return yapf_api.FormatCode(text, style_config=style_config, **kwargs)
    return _format_once(text, tuple(sorted(style_config.items())))


def format_each_config_once() -> None:
    """Format the text of a config with yapf once per process, not at every read.

    mmengine 0.10.7's ``Config.pretty_text`` runs yapf over the whole config every time it is
    read, and one Runner reads it five times with the same text (the log, the dumped config,
    the visualizer's copy, the message hub's metainfo, each checkpoint's meta): about 1 s per
    read for a detection config on 2 loaded cores, 15% of a 2-iteration tiny fine-tuning
    (cProfile of ``tools/train.py``). yapf's ``FormatCode`` is a function of the text and the
    style only, so :func:`_format_once` keeps its last results; the text is unchanged.
    """
    from mmengine.config import config
    config.FormatCode = _format_code
