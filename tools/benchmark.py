"""Pretrain -> convert -> fine-tune -> paper table, in one command, resumable.

Examples::

    python tools/benchmark.py                                   # --suite tiny (CPU, about 12 min)
    python tools/benchmark.py --suite mini-real --data ../shared/data
    python tools/benchmark.py --suite paper --data /datasets --dry-run     # print the commands
    python tools/benchmark.py --suite paper --seeds 3 --dry-run  # 3 seeds for every protocol
    python tools/benchmark.py --suite paper --work-dir runs/paper --collect  # table from finished runs

Writes WORK_DIR/results.md, results.json and results.png. Killed and started again, it skips
finished cells and resumes unfinished runs from their latest checkpoint. Each protocol has its
own launch (processes x images = its total batch) and its own number of seeds; in the paper
suite VOC detection runs on 8 GPUs with 5 seeds, COCO on 8 GPUs, segmentation on 4 GPUs.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.benchmark import (SUITES, BenchmarkRunner, select_methods,  # noqa: E402
                              select_protocols)
from dsc_mm.benchmark.report import write_report  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suite', choices=sorted(SUITES), default='tiny')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/benchmark_<suite>)')
    parser.add_argument('--data', help='data root: tiny = the generated scenes (made if missing, '
                        'default data/scenes); mini-real = the folder holding coco_tiny, '
                        'coco128_voc, camvid_mini; paper = your dataset root')
    parser.add_argument('--seeds', type=int, metavar='N',
                        help='fine-tuning seeds 0..N-1 for every cell (default: each '
                        'protocol\'s own: 5 for paper VOC detection, as the papers, else 1)')
    parser.add_argument('--methods', nargs='+', metavar='KEY',
                        help='rows to run: random mocov2 densecl dsc-km dsc-pm '
                        '(default: the suite\'s defaults)')
    parser.add_argument('--protocols', nargs='+', metavar='KEY',
                        help="columns to run (default: the suite's defaults: tiny coco-det "
                        'voc-probe, mini-real street-probe, the others all)')
    parser.add_argument('--checkpoint', nargs='+', default=[], metavar='NAME=PATH',
                        help='add a row for your own pretraining or converted checkpoint')
    parser.add_argument('--gpus', type=int, metavar='N',
                        help='processes per pretraining run (default: 8 for paper, else 1); '
                        'fine-tuning runs use their protocol\'s own count (paper: detection 8, '
                        'segmentation 4), the one its lr is for; >1 uses tools/dist_train.sh')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    parser.add_argument('--collect', action='store_true',
                        help='only collect metrics of finished fine-tuning work dirs')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        suite = select_protocols(SUITES[args.suite], args.protocols)
        work_dir = args.work_dir or os.path.join('work_dirs', f'benchmark_{suite.name}')
        methods = select_methods(suite, args.methods, args.checkpoint)
        runner = BenchmarkRunner(suite, methods, work_dir, data=args.data or suite.default_data,
                                 seeds=args.seeds, gpus=args.gpus)
    except ValueError as exc:
        sys.exit(f'error: {exc}')
    if args.dry_run:
        print('\n'.join(runner.dry_run()))
        return
    if not args.collect:
        runner.prepare_data()
        runner.run(on_cell_done=lambda: write_report(runner, quiet=True))
    else:
        runner.collect()
    print(write_report(runner))


if __name__ == '__main__':
    main()
