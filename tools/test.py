"""Evaluate a checkpoint of any dsc_mm downstream config (mmdet or mmseg).

Example::

    python tools/test.py configs/detection/<config>.py work_dirs/<run>/iter_24000.pth
"""
import argparse
import os
import sys

from mmengine.config import DictAction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dsc_mm  # noqa: E402,F401  (registers modules, safe-loading allowlist)
from dsc_mm.apis import build_runner, scope_of  # noqa: E402
from dsc_mm.apis.checks import check_config, load_config  # noqa: E402
from dsc_mm.utils import load_checkpoint_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation logs go')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not os.path.isfile(path):
            sys.exit(f'error: {path} does not exist; check the path.')
    try:
        cfg = load_config(args.config)  # syntax errors: one sentence with the line
        scope_of(cfg, args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        check_config(cfg, args.config)
        # Safe load first: a refused or truncated file is one sentence, not mmengine's traceback.
        load_checkpoint_file(args.checkpoint)
    except ValueError as exc:
        sys.exit(f'error: {exc}')
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    cfg.work_dir = args.work_dir or os.path.join(
        './work_dirs', os.path.splitext(os.path.basename(args.config))[0])
    metrics = build_runner(cfg).test()
    print(metrics)


if __name__ == '__main__':
    main()
