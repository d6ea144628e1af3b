"""The semantic heads at simulated world sizes: peak memory, time and loss per GPU.

One process stands for rank 0 of a W-GPU run: its M = B x S x S dense queries (with gradient)
and its own B x S x S key pixels are real tensors; the other ranks' key pixels are built
beforehand, and ``mmengine.dist``'s ``all_gather``/``get_rank``/``get_world_size`` as seen by
``dsc_mm.models.utils.pixel_pool`` are replaced by functions that read them (what
``all_gather`` would return there). Every rank's pixels come from the SAME distribution (256
latent classes, each pixel at cosine ~0.7 to its class; rank r's block from seed r), so the
rows differ only by W.

Per W and head (DSC-KM, DSC-PM), after one untimed step (k-means++ seeding, allocator):

- peak memory of the semantic term, forward + backward: the contrast set
  (``bounded_pixel_pool``), the head's loss and its backward; peak RSS over the RSS before it,
  with glibc's mmap threshold fixed at 128 KiB so that freed tensors leave the RSS;
- median time of ``--repeats`` such steps (``--clock``);
- the loss value (unweighted) of the last step.

``--cap 0`` runs without the cap (the whole gathered pool, main before issue 10) for
comparison.

Usage (from the repository root)::

    python perf/semantic_scale.py --world 8 64 256 --threads 1 --clock process
    python perf/semantic_scale.py --world 8 16 32 64 --cap 0 --threads 1 --clock process
"""
import argparse
import ctypes
import gc
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.models.heads import KMeansSemanticHead, PrototypeSemanticHead  # noqa: E402
from dsc_mm.models.utils import pixel_pool  # noqa: E402
from perf._common import (current_rss_mib, make_clock, peak_rss_mib,  # noqa: E402
                          reset_peak_rss, synchronize)

HEADS = {
    'DSC-KM': lambda args: KMeansSemanticHead(num_classes=args.classes, feat_dim=args.channels,
                                              num_iters=10, temperature=0.2),
    'DSC-PM': lambda args: PrototypeSemanticHead(num_classes=args.classes,
                                                 feat_dim=args.channels, temperature=0.1),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--world', type=int, nargs='+', default=[8, 64, 256],
                        help='simulated numbers of GPUs W')
    parser.add_argument('--batch', type=int, default=32, help='images per GPU')
    parser.add_argument('--grid', type=int, default=7, help='C5 grid side S (224 px: 7)')
    parser.add_argument('--channels', type=int, default=128, help='embedding dimension C')
    parser.add_argument('--classes', type=int, default=128, help='pixel classes K')
    parser.add_argument('--cap', type=int, default=12544,
                        help='max_contrast_pixels (the model default); 0: no cap')
    parser.add_argument('--heads', nargs='+', default=list(HEADS), choices=list(HEADS))
    parser.add_argument('--repeats', type=int, default=3, help='timed steps per row')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (peak memory: '
                        'max_memory_allocated over the memory before the step)')
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall',
                        help='wall: elapsed; process: CPU time of the process (with --threads '
                        '1 the time on an idle core, robust to a loaded machine)')
    return parser.parse_args(argv)


def fix_mmap_threshold(num_bytes=128 * 1024):
    """glibc: map every buffer >= ``num_bytes`` on its own, so a freed tensor leaves the RSS."""
    try:
        ctypes.CDLL('libc.so.6').mallopt(-3, num_bytes)  # M_MMAP_THRESHOLD
        return True
    except (OSError, AttributeError):
        return False


def class_centres(channels):
    return F.normalize(torch.randn(256, channels, generator=torch.Generator().manual_seed(0)),
                       dim=1)


def rank_pixels(rank, num_pixels, centres):
    """Unit key pixels of one rank: its latent class + noise (cosine ~0.7). # (L, C)"""
    gen = torch.Generator().manual_seed(1000 + rank)
    classes = torch.randint(len(centres), (num_pixels, ), generator=gen)
    noise = torch.randn(num_pixels, centres.shape[1], generator=gen) / centres.shape[1]**0.5
    return F.normalize(centres[classes] + noise, dim=1)


class SimulatedRanks:
    """``pixel_pool``'s view of ``mmengine.dist`` for rank ``rank`` of ``len(blocks)`` ranks.

    A context manager. ``all_gather`` returns this rank's tensor in its slot and, in the others,
    what rank r would send: its whole block, or (bounded set) the rows ``sample_rows`` draws
    for r with the same count and seed.
    """

    def __init__(self, blocks, rank=0):
        self.blocks = blocks  # rank -> (L, C); this rank's is the real local block
        self.rank = rank
        self.draws = []  # (count, seed) of this rank's pending sample_rows call

    def __enter__(self):
        self._saved = {n: getattr(pixel_pool, n)
                       for n in ('all_gather', 'get_rank', 'get_world_size', 'sample_rows')}
        real_sample_rows = self._saved['sample_rows']
        world = len(self.blocks)

        def sample_rows(local, count, seed, rank, device):
            self.draws.append((count, seed))
            return real_sample_rows(local, count, seed, rank, device)

        def all_gather(tensor):
            if not self.draws:  # the whole pool
                return [tensor if r == self.rank else self.blocks[r] for r in range(world)]
            count, seed = self.draws.pop()
            return [tensor if r == self.rank else self.blocks[r][real_sample_rows(
                len(self.blocks[r]), count, seed, r, tensor.device)] for r in range(world)]

        pixel_pool.all_gather = all_gather
        pixel_pool.get_rank = lambda: self.rank
        pixel_pool.get_world_size = lambda: world
        pixel_pool.sample_rows = sample_rows
        return self

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(pixel_pool, name, fn)


def semantic_step(head, key_dense, match, query_leaf, cap):
    """Contrast set + head loss + backward, as in ``DSC.loss`` step 6; returns the loss."""
    contrast = pixel_pool.bounded_pixel_pool(key_dense, match, cap or None, seed=1)
    query = F.normalize(query_leaf, dim=1)
    out = head.loss(query, contrast.pixels, contrast.match_rows,
                    torch.tensor(10**9, device=query.device), contrast.cluster_pixels)
    out['loss'].backward()
    return float(out['loss'].detach())


class PeakMemory:
    """Peak memory of a block in MiB over the memory before it: CUDA's allocator, else RSS."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            self.valid = True
        else:
            gc.collect()
            self.base = current_rss_mib()
            self.valid = reset_peak_rss()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = peak_rss_mib()
        self.mib = peak - self.base if self.valid else float('nan')


def measure(args, world, name, clock):
    """(peak MiB, median seconds, loss, contrast rows) of one head at one world size."""
    device = torch.device(args.device)
    num_loc = args.grid**2
    local = args.batch * num_loc
    centres = class_centres(args.channels)
    blocks = {r: rank_pixels(r, local, centres).to(device) for r in range(world)}
    key_dense = blocks[0].reshape(args.batch, num_loc, args.channels).permute(0, 2, 1)
    gen = torch.Generator().manual_seed(7)
    match = torch.randint(num_loc, (args.batch, num_loc), generator=gen).to(device)
    rows = (torch.arange(args.batch, device=device)[:, None] * num_loc + match).reshape(-1)
    matched = blocks[0][rows]  # (M, C): each query near its matched key pixel
    noise = torch.randn(matched.shape, generator=gen).to(device)
    query_leaf = (matched + 0.3 * noise).requires_grad_()
    torch.manual_seed(0)
    head = HEADS[name](args).to(device)
    with SimulatedRanks(blocks):
        semantic_step(head, key_dense, match, query_leaf, args.cap)  # k-means++, allocator
        query_leaf.grad = None
        times, loss, peak = [], None, float('nan')
        for i in range(args.repeats):
            with PeakMemory(device) as memory:
                synchronize(device)
                start = clock()
                loss = semantic_step(head, key_dense, match, query_leaf, args.cap)
                synchronize(device)
                times.append(clock() - start)
            query_leaf.grad = None
            if i == 0:
                peak = memory.mib
        contrast = pixel_pool.bounded_pixel_pool(key_dense, match, args.cap or None, seed=1)
    return peak, statistics.median(times), loss, contrast.pixels.shape[0], \
        None if contrast.cluster_pixels is None else contrast.cluster_pixels.shape[0]


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = make_clock(args.clock, torch.device(args.device))
    mmap_fixed = fix_mmap_threshold()
    start = time.perf_counter()
    where = torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else \
        f'{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}'
    print(f'# Semantic heads at simulated world sizes: torch {torch.__version__}, {where}, '
          f'clock {args.clock}, python {platform.python_version()}')
    print(f'command: python {" ".join(sys.argv)}')
    print(f'per GPU: {args.batch} images x {args.grid}x{args.grid} = '
          f'{args.batch * args.grid**2} queries, C={args.channels}, K={args.classes}, '
          f'cap {args.cap or "none"}, {args.repeats} timed steps after 1 untimed, '
          f'mmap threshold fixed: {mmap_fixed}\n')
    print('| head | GPUs W | global pool N | contrast set | clustering sample | '
          'peak memory fwd+bwd (MiB) | time (ms) | loss |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    results = {}
    for name in args.heads:
        for world in args.world:
            peak, seconds, loss, rows, sample = measure(args, world, name, clock)
            results[name, world] = (peak, seconds, loss)
            sample = 'whole pool' if sample is None else sample
            print(f'| {name} | {world} | {world * args.batch * args.grid**2} | {rows} | '
                  f'{sample} | {peak:.0f} | {seconds * 1e3:.0f} | {loss:.3f} |', flush=True)
    low, high = min(args.world), max(args.world)
    print()
    for name in args.heads:
        (m0, t0, l0), (m1, t1, l1) = results[name, low], results[name, high]
        memory = f'x{m1 / m0:.2f}' if m0 > 0 else 'n/a (under 1 MiB)'
        print(f'{name}: W={high} vs W={low}: memory {memory}, time x{t1 / t0:.2f}, '
              f'loss {l1 - l0:+.3f}')
    print(f'\ntotal wall time {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
