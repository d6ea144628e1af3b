"""Throughput of the two-view MoCo v2 data pipeline against the rate a training step consumes.

The pipeline is mmpretrain's (``_base_/datasets/imagenet_bs32_mocov2.py``: RandomResizedCrop to
``--size``, colour jitter, grayscale, Gaussian blur, flip, two views) with the project's
``LoadImageRGB`` in place of ``LoadImageFromFile``, read by ``ImageFolderDataset`` through a
``torch.utils.data.DataLoader`` with mmengine's ``default_collate``, as the configs do. For each
worker count it prints images/s (one image = both views), after the first batches (worker start,
page cache) are discarded.

With ``--step-ms`` (a measured training-step time, e.g. DSC-KM's median from
``perf/pretrain_step.py``) and ``--step-batch`` it also prints the step's consumption rate
and the workers one training process (one GPU) needs so that loading is not the bottleneck.

Usage (from the repository root)::

    python tools/generate_scenes.py --out data/scenes      # if data/scenes is absent
    python perf/data_pipeline.py --workers 0 1 2 --step-ms 2500 --step-batch 4
    python perf/data_pipeline.py --data-root ../shared/data --folders coco_tiny/train2017
"""
import argparse
import math
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MOCOV2_DATA = 'mmpretrain::_base_/datasets/imagenet_bs32_mocov2.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-root', default=os.environ.get('DSC_MM_SCENES', 'data/scenes'),
                        help='image root (default: $DSC_MM_SCENES or data/scenes)')
    parser.add_argument('--folders', nargs='+', default=['unlabeled'],
                        help='image sub-folders of --data-root')
    parser.add_argument('--size', type=int, default=224, help='crop size (paper: 224)')
    parser.add_argument('--batch', type=int, default=32, help='images per batch (paper: 32)')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2],
                        help='DataLoader num_workers values to measure')
    parser.add_argument('--batches', type=int, default=6, help='timed batches per setting')
    parser.add_argument('--skip', type=int, default=1,
                        help='first batches left out of the timing (worker start-up)')
    parser.add_argument('--step-ms', type=float, default=None,
                        help='measured time of one training step, ms (for the consumption rate)')
    parser.add_argument('--step-batch', type=int, default=None,
                        help='images per step of --step-ms (default: --batch)')
    parser.add_argument('--headroom', type=float, default=1.25,
                        help='loader throughput wanted over the consumption rate')
    return parser.parse_args(argv)


def view_pipeline(size):
    """mmpretrain's MoCo v2 view pipeline with the crop size set to ``size``."""
    from mmengine.hub import get_config
    views = get_config(MOCOV2_DATA).view_pipeline
    for t in views:
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = size
    return views


def build_dataset(args):
    import dsc_mm.datasets  # noqa: F401  (registers ImageFolderDataset and LoadImageRGB)
    from mmpretrain.registry import DATASETS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    pipeline = [
        dict(type='LoadImageRGB'),
        dict(type='MultiView', num_views=2, transforms=[view_pipeline(args.size)]),
        dict(type='PackInputs'),
    ]
    return DATASETS.build(dict(type='ImageFolderDataset', data_root=args.data_root,
                               folders=args.folders, pipeline=pipeline))


def throughput(dataset, args, workers):
    """Images per second of the loader with ``workers`` processes (wall clock)."""
    from mmengine.dataset import default_collate
    needed = (args.skip + args.batches) * args.batch
    if len(dataset) < args.batch:
        raise SystemExit(f'{args.data_root} holds {len(dataset)} images, fewer than one batch '
                         f'of {args.batch}; lower --batch or point --data-root at more images.')
    # Sampling with replacement so any image count yields enough batches.
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=needed,
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, sampler=sampler,
                                         num_workers=workers, collate_fn=default_collate,
                                         drop_last=True)
    it = iter(loader)
    for _ in range(args.skip):
        next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
        batch = next(it)
    elapsed = time.perf_counter() - start
    shape = tuple(batch['inputs'][0].shape)
    del it, loader
    return args.batches * args.batch / elapsed, shape


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)  # the transforms are numpy/PIL; one process = one core
    print(f'# Data pipeline benchmark: torch {torch.__version__}, {os.cpu_count()} CPU cores, '
          f'{platform.processor() or platform.machine()}, python {platform.python_version()}')
    print(f'command: python {" ".join(sys.argv)}')
    dataset = build_dataset(args)
    print(f'{len(dataset)} images under {args.data_root} {args.folders}, {args.size} px crops, '
          f'2 views, batch {args.batch}, {args.batches} timed batches after {args.skip}\n')
    print('| num_workers | images/s (2 views each) | batch shape (one view) |')
    print('|---:|---:|---|')
    rates = {}
    for workers in args.workers:
        rates[workers], shape = throughput(dataset, args, workers)
        print(f'| {workers} | {rates[workers]:.1f} | {shape} |', flush=True)

    if args.step_ms:
        step_batch = args.step_batch or args.batch
        consumption = step_batch / (args.step_ms / 1e3)
        # One worker's rate: measured with 1 worker (the main process then only collates).
        per_worker = rates.get(1) or max(rates.values())
        need = math.ceil(args.headroom * consumption / per_worker)
        print(f'\nstep consumption: {consumption:.1f} images/s ({step_batch} images per '
              f'{args.step_ms:.0f} ms step)')
        print(f'one worker: {per_worker:.1f} images/s -> workers needed per training process '
              f'(x{args.headroom} headroom): {need}')


if __name__ == '__main__':
    main()
