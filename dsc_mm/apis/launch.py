"""The launch guard of ``tools/train.py``: a protocol's lr belongs to its total batch.

A downstream protocol config states the total batch its lr is for in
``auto_scale_lr.base_batch_size`` (detection 16 = 8 GPUs x 2, FCN VOC12aug 16 = 4 x 4,
Cityscapes 8 = 4 x 2, ImageNet linear evaluation 256 = 8 x 32). Launching it with another
number of processes silently changes the total batch at the same lr, the commonest cause of
"my numbers are far from the paper".
"""
from typing import Optional

from mmengine.config import Config

#: Scopes of the fine-tuning configs the guard applies to (pretraining configs state the
#: batch of their recipe name, e.g. ``8xb32``, and are not protocols).
FINETUNE_SCOPES = ('mmdet', 'mmseg')


def is_protocol(cfg: Config) -> bool:
    """A fine-tuning config (mmdet, mmseg) or an mmpretrain classifier (linear evaluation).

    mmpretrain's pretraining models (DSC, DenseCL, MoCo) share the scope of the linear
    evaluation but are not protocols.
    """
    scope = cfg.get('default_scope')
    model_type = str(cfg.get('model', {}).get('type', '')).split('.')[-1]
    return scope in FINETUNE_SCOPES or (scope == 'mmpretrain' and
                                        model_type == 'ImageClassifier')


def check_total_batch(cfg: Config, world_size: int, config_path: str = '') -> Optional[float]:
    """Compare ``world_size`` x per-process batch with the protocol's total batch.

    Args:
        cfg (Config): The merged config (after ``--cfg-options``).
        world_size (int): Number of training processes of this launch.
        config_path (str): The config file, for the message.

    Returns:
        float | None: The lr the run uses when ``auto_scale_lr`` is enabled (mmengine scales
        it linearly: ``lr x total / base_batch_size``); None when the config states no total
        batch or is not a protocol (:func:`is_protocol`).

    Raises:
        ValueError: One sentence, when the totals differ and ``auto_scale_lr`` is off.
    """
    scale = cfg.get('auto_scale_lr') or {}
    base = scale.get('base_batch_size')
    if base is None or not is_protocol(cfg):
        return None
    per_process = cfg.train_dataloader.batch_size
    total = world_size * per_process
    lr = cfg.optim_wrapper.optimizer.lr
    if scale.get('enable', False):
        return lr * total / base
    if total != base:
        config = config_path or cfg.filename
        launch = (f'launch {base // per_process} processes (tools/dist_train.sh {config} '
                  f'{base // per_process})' if base % per_process == 0 else
                  f'set train_dataloader.batch_size so that processes x batch = {base}')
        raise ValueError(
            f'Config {config} is a protocol for a total batch of {base} (auto_scale_lr.'
            f'base_batch_size) at lr {lr}, but this launch trains {world_size} process(es) x '
            f'{per_process} images = {total}; {launch}, or pass --cfg-options '
            f'auto_scale_lr.enable=True to scale the lr linearly to {lr * total / base:g}.')
    return lr
