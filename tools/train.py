"""Train any dsc_mm config: pretraining (mmpretrain), detection (mmdet) or segmentation (mmseg).

Examples::

    python tools/train.py configs/pretrain/dsc-km_resnet18_tiny_scenes.py
    python tools/train.py CONFIG --resume                     # continue from work_dir's latest
    python tools/train.py DET_CONFIG --pretrained backbone.pth
    python tools/train.py DET_CONFIG --pretrained epoch_200.pth --encoder key   # EMA key encoder
    tools/dist_train.sh CONFIG 8 [--amp ...]                  # 8 processes on this node
"""
import argparse
import os
import sys

from mmengine.config import DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dsc_mm  # noqa: E402,F401  (registers modules, safe-loading allowlist)
from dsc_mm.apis import build_runner, merge_args, scope_of  # noqa: E402
from dsc_mm.apis.checks import (build_train_data, check_config, check_inputs,  # noqa: E402
                                load_config)
from dsc_mm.apis.launch import check_total_batch  # noqa: E402
from dsc_mm.engine.hooks import NonFiniteLossError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a dsc_mm config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint of the work dir '
                        'when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--pretrained', metavar='PATH',
                        help='downstream configs: backbone checkpoint (converted with '
                        'tools/convert_checkpoint.py, or an mmpretrain pretraining checkpoint); '
                        '"random" for random init')
    parser.add_argument('--encoder', choices=['query', 'key'],
                        help='with --pretrained PRETRAINING_CHECKPOINT: which encoder\'s backbone '
                        'to load, the trained query encoder (default, what MoCo and DenseCL '
                        'transfer) or the EMA key encoder')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.config):
        sys.exit(f'Config {args.config} does not exist; pass a file under configs/.')
    try:
        cfg = load_config(args.config)  # syntax errors: one sentence with the line
        scope_of(cfg, args.config)
        cfg = merge_args(cfg, args)
        check_config(cfg, args.config)  # unknown types, misspelt keys
        check_inputs(cfg)  # resume checkpoint, COCO image files
        runner = build_runner(cfg)
        # The protocol's lr is for its total batch: refuse another unless auto_scale_lr is on.
        lr = check_total_batch(cfg, runner.world_size, args.config)
        if lr is not None:
            runner.logger.info(f'Total batch {runner.world_size} process(es) x '
                               f'{cfg.train_dataloader.batch_size} images: lr {lr:g}.')
        build_train_data(runner)  # empty/missing data root, broken images
    except ValueError as exc:  # our own checks (scope, checkpoint, protocol): one sentence
        sys.exit(f'error: {exc}')
    try:
        runner.train()
    except NonFiniteLossError as exc:  # the last good checkpoint is kept; say so, no traceback
        sys.exit(f'error: {exc}')


if __name__ == '__main__':
    main()
