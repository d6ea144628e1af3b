"""Pretrain -> convert -> fine-tune -> paper table, in one command, resumable.

Examples::

    python tools/benchmark.py                                   # --suite tiny (CPU, about 12 min)
    python tools/benchmark.py --suite mini-real --data data/mini-real  # tools/fetch_data.py first
    python tools/benchmark.py --suite paper --data /datasets --dry-run     # print the commands
    python tools/benchmark.py --suite paper --seeds 3 --dry-run  # 3 seeds for every protocol
    python tools/benchmark.py --suite paper --work-dir runs/paper --collect  # table from finished runs
    python tools/benchmark.py --suite paper --data /datasets --launcher slurm --partition gpu
    python tools/benchmark.py --suite paper --work-dir work_dirs/benchmark_paper --status

Writes WORK_DIR/results.md, results.json and results.png. Killed and started again, it skips
finished cells and resumes unfinished runs from their latest checkpoint. Each protocol has its
own launch (processes x images = its total batch) and its own number of seeds; in the paper
suite VOC detection runs on 8 GPUs with 5 seeds, COCO on 8 GPUs, segmentation on 4 GPUs.
With --launcher slurm every pretraining and every cell is its own Slurm job (docs/cluster.md);
the same command again submits only what is neither done nor queued.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.benchmark import (SUITES, BenchmarkRunner, select_methods,  # noqa: E402
                              select_protocols)
from dsc_mm.benchmark.report import write_report  # noqa: E402
from dsc_mm.benchmark.slurm import DEFAULT_TIME, SlurmError, SlurmOptions  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suite', choices=sorted(SUITES), default='tiny')
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/benchmark_<suite>)')
    parser.add_argument('--data', help='data root: tiny = the generated scenes (made if missing, '
                        'default data/scenes); mini-real = the folder holding coco_tiny, '
                        'coco128_voc, camvid_mini; paper = your dataset root')
    parser.add_argument('--seeds', type=int, metavar='N',
                        help='fine-tuning seeds 0..N-1 for every cell (default: each '
                        'protocol\'s own: 5 for paper VOC detection and VOC12aug '
                        'segmentation, as DenseCL reports, else 1)')
    parser.add_argument('--methods', nargs='+', metavar='KEY',
                        help='rows to run: random mocov2 densecl dsc-km dsc-pm '
                        '(default: the suite\'s defaults)')
    parser.add_argument('--protocols', nargs='+', metavar='KEY',
                        help="columns to run (default: the suite's defaults: tiny voc-probe, "
                        'mini-real street-probe, the others all)')
    parser.add_argument('--checkpoint', nargs='+', default=[], metavar='NAME=PATH',
                        help='add a row for your own pretraining or converted checkpoint')
    parser.add_argument('--gpus', type=int, metavar='N',
                        help='processes per pretraining run (default: 8 for paper, else 1); '
                        'fine-tuning runs use their protocol\'s own count (paper: detection 8, '
                        'segmentation 4), the one its lr is for; >1 uses tools/dist_train.sh')
    parser.add_argument('--pretrain-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options added to every pretraining run')
    parser.add_argument('--finetune-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='--cfg-options added last to every fine-tuning run')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands only (with --launcher slurm: the jobs)')
    parser.add_argument('--collect', action='store_true',
                        help='only collect metrics of finished fine-tuning work dirs')
    slurm = parser.add_argument_group('Slurm (docs/cluster.md)')
    slurm.add_argument('--launcher', choices=['local', 'slurm'], default='local',
                       help='local: every step here, one after another; slurm: submit every '
                       'pretraining and every cell as its own job and return')
    slurm.add_argument('--status', action='store_true',
                       help='print the grid of a Slurm submission (queued / running / done / '
                       'failed) and rewrite the results table')
    slurm.add_argument('--partition', help='Slurm partition (default: the cluster\'s default)')
    slurm.add_argument('--time', nargs='+', default=[], metavar='KIND=LIMIT',
                       help='time limit per job kind, e.g. pretrain=3-00:00:00 '
                       'finetune=12:00:00 (defaults: ' + ' '.join(
                           f'{k}={v}' for k, v in DEFAULT_TIME.items()) + ')')
    slurm.add_argument('--gpus-per-node', type=int, default=8,
                       help='GPUs of a node; larger jobs span several nodes (default 8)')
    slurm.add_argument('--cpus-per-gpu', type=int, default=5,
                       help='CPU cores per process (default 5)')
    slurm.add_argument('--mem-per-gpu', help='memory per process, e.g. 40G')
    slurm.add_argument('--max-nodes', type=int,
                       help='nodes a job may span (default: the partition\'s nodes)')
    slurm.add_argument('--cpu', action='store_true',
                       help='request no GPUs (a CPU partition; processes use gloo)')
    slurm.add_argument('--sbatch', nargs='+', default=[], metavar='OPTION=VALUE',
                       help='any other sbatch option, e.g. account=abc qos=high '
                       'constraint=volta32gb')
    return parser.parse_args(argv)


def slurm_options(args) -> SlurmOptions:
    """The Slurm options of the command line; raises ValueError with one sentence."""
    times = dict(DEFAULT_TIME)
    for item in args.time:
        kind, sep, value = item.partition('=')
        if not sep or kind not in times:
            raise ValueError(f'--time expects KIND=LIMIT with KIND one of {sorted(times)}, '
                             f'got {item!r}.')
        times[kind] = value
    extra = {}
    for item in args.sbatch:
        key, sep, value = item.lstrip('-').partition('=')
        if not sep or not key:
            raise ValueError(f'--sbatch expects OPTION=VALUE (account=abc), got {item!r}.')
        extra[key] = value
    return SlurmOptions(partition=args.partition, time=times, gpus_per_node=args.gpus_per_node,
                        cpus_per_gpu=args.cpus_per_gpu, mem_per_gpu=args.mem_per_gpu,
                        cpu=args.cpu, max_nodes=args.max_nodes, sbatch=extra)


def main(argv=None):
    args = parse_args(argv)
    try:
        suite = select_protocols(SUITES[args.suite], args.protocols)
        work_dir = args.work_dir or os.path.join('work_dirs', f'benchmark_{suite.name}')
        methods = select_methods(suite, args.methods, args.checkpoint)
        runner = BenchmarkRunner(suite, methods, work_dir, data=args.data or suite.default_data,
                                 seeds=args.seeds, gpus=args.gpus,
                                 pretrain_options=args.pretrain_options,
                                 finetune_options=args.finetune_options)
        options = slurm_options(args)
        if args.status:  # the submission's own runner: only --work-dir matters
            from dsc_mm.benchmark.slurm import finish, runner_of
            from dsc_mm.benchmark.status import status_text
            runner = runner_of(runner.work_dir)
            finish(runner)
            print(status_text(runner))
            return
        if args.launcher == 'slurm':
            from dsc_mm.benchmark import slurm
            from dsc_mm.benchmark.slurm_jobs import summary
            slurm.check(runner, options, query_cluster=not args.dry_run)
            if args.dry_run:
                print('\n'.join(summary(runner, options.gpus_per_node, options.time)))
                return
            runner.prepare_data()
            slurm.submit(runner, options)
            return
    except (ValueError, SlurmError, FileNotFoundError) as exc:
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
