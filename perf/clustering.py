"""Clustering micro-benchmark: spherical k-means and Sinkhorn-Knopp vs pool size N and K.

Prints markdown tables (the ones in docs/performance.md, section "Clustering"):

1. ``spherical_kmeans`` time vs N and K at C=128: k-means++ seeding (first training step only)
   and 10 warm-started Lloyd steps (every later step), median of R repeats, with the time per
   1k pixels to show the growth in N.
2. The same data clustered by scikit-learn's ``KMeans`` (k-means++, 10 Lloyd iterations, one
   init) on the unit vectors, both scored with the spherical objective
   ``sum_i (1 - cos(x_i, c_label(i)))`` (reported per point). scikit-learn is optional.
3. ``sinkhorn_knopp`` time vs N (eps 0.05, 3 iterations).
4. The share of one DenseCL ResNet-50 training step that clustering takes at the paper's pool
   sizes, N = 32 * 7 * 7 = 1568 per GPU and 12544 for the global batch of 256.

Usage (from the repository root)::

    python perf/clustering.py                      # CPU
    python perf/clustering.py --device cuda
    PYTHONPATH=/path/to/sklearn python perf/clustering.py   # adds the scikit-learn rows
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.models.utils.kmeans import kmeans_plus_plus, spherical_kmeans  # noqa: E402
from dsc_mm.models.utils.sinkhorn import sinkhorn_knopp  # noqa: E402
from perf._common import make_clock, synchronize  # noqa: E402

try:
    from sklearn.cluster import KMeans
except ImportError:  # optional: only the comparison rows need it
    KMeans = None

#: The DenseCL config that mmpretrain ships (ResNet-50, DenseCL neck, 65536-key queues).
DENSECL_CFG = 'mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda')
    parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 4000, 16000, 64000, 100000],
                        help='pool sizes N (pixels)')
    parser.add_argument('--clusters', type=int, nargs='+', default=[64, 128, 256, 512],
                        help='numbers of clusters K')
    parser.add_argument('--channels', type=int, default=128, help='embedding dimension C')
    parser.add_argument('--iters', type=int, default=10, help='Lloyd steps')
    parser.add_argument('--repeats', type=int, default=5,
                        help='repeats (median) for N <= 16000; larger N use --large-repeats')
    parser.add_argument('--large-repeats', type=int, default=3, help='repeats for N > 16000')
    parser.add_argument('--sklearn-clusters', type=int, nargs='*', default=[128, 512],
                        help='K values compared with scikit-learn (every N)')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads for torch and scikit-learn (default: torch default)')
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall',
                        help='wall: elapsed time; process: CPU time of this process summed over '
                        'its threads, which with --threads 1 is the time on an idle core even '
                        'when other jobs share the machine (CPU only)')
    parser.add_argument('--densecl-batches', type=int, nargs='+', default=[2, 4],
                        help='batch sizes of the measured DenseCL steps (linear fit to 32); '
                        'pass 0 to skip')
    return parser.parse_args()


#: Set from --clock in main().
CLOCK = time.perf_counter


def timed(fn, device, repeats, warmup=False):
    """Median time (``CLOCK``) of ``fn()`` in seconds over ``repeats`` calls, and the last result.

    Without ``warmup`` the first call is timed too: at large N one call takes seconds, so lazy
    start-up costs are negligible there, and ``main`` warms the kernels up once beforehand.
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = CLOCK()
        result = fn()
        synchronize(device)
        times.append(CLOCK() - start)
    return statistics.median(times), result


def make_pool(num_points, channels, device, seed=0):
    """A clustered unit pool: 256 latent classes, each pixel at cosine ~0.7 to its class."""
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(256, channels, generator=gen), dim=1)
    classes = torch.randint(256, (num_points, ), generator=gen)
    noise = torch.randn(num_points, channels, generator=gen) / channels**0.5
    return F.normalize(centres[classes] + noise, dim=1).to(device)  # (N, C)


def spherical_inertia(x, labels, centroids):
    """Mean over points of 1 - cos(x, assigned centroid): the spherical k-means objective / N."""
    centroids = F.normalize(centroids.float(), dim=1)
    return float((1 - (x * centroids[labels]).sum(dim=1)).mean())


def bench_kmeans(args, device):
    print(f'\n### spherical_kmeans: time vs N and K (C={args.channels}, {args.iters} Lloyd steps)'
          '\n')
    print('| N | K | repeats | k-means++ seeding (ms) | Lloyd, warm start (ms) '
          '| Lloyd per 1k pixels (ms) | inertia / N |')
    print('|---:|---:|---:|---:|---:|---:|---:|')
    rows = {}
    for n in args.sizes:
        x = make_pool(n, args.channels, device)
        repeats = args.repeats if n <= 16000 else args.large_repeats
        for k in args.clusters:
            gen = torch.Generator(device=device)
            t_seed, seeds = timed(lambda: kmeans_plus_plus(x, k, generator=gen.manual_seed(0)),
                                  device, repeats)
            t_lloyd, (labels, centroids) = timed(
                lambda: spherical_kmeans(x, k, num_iters=args.iters, init_centroids=seeds),
                device, repeats)
            inertia = spherical_inertia(x, labels, centroids)
            rows[n, k] = (t_seed, t_lloyd, inertia)
            print(f'| {n} | {k} | {repeats} | {t_seed * 1e3:.1f} | {t_lloyd * 1e3:.1f} '
                  f'| {t_lloyd * 1e3 / (n / 1000):.2f} | {inertia:.4f} |', flush=True)
    return rows


def bench_sklearn(args, device, rows):
    if not args.sklearn_clusters:
        return
    print('\n### scikit-learn KMeans on the same unit vectors (k-means++, '
          f'max_iter={args.iters}, n_init=1)\n')
    if KMeans is None:
        print('scikit-learn is not installed: comparison skipped (install it outside the '
              'project environment and put it on PYTHONPATH to add these rows).')
        return
    import sklearn
    from threadpoolctl import threadpool_limits
    print(f'scikit-learn {sklearn.__version__}; ours = k-means++ + {args.iters} Lloyd steps '
          '(seeding + warm Lloyd from the table above); both scored with the spherical '
          'objective.\n')
    print('| N | K | ours total (s) | sklearn total (s) | sklearn iters | ours inertia / N '
          '| sklearn inertia / N | ours vs sklearn |')
    print('|---:|---:|---:|---:|---:|---:|---:|---:|')
    for n in args.sizes:
        x = make_pool(n, args.channels, device)
        x_np = x.cpu().numpy()
        for k in args.sklearn_clusters:
            if (n, k) not in rows:
                continue
            t_seed, t_lloyd, inertia = rows[n, k]
            km = KMeans(n_clusters=k, init='k-means++', n_init=1, max_iter=args.iters, tol=0,
                        algorithm='lloyd', random_state=0)
            with threadpool_limits(args.threads):
                start = CLOCK()
                km.fit(x_np)
                t_sk = CLOCK() - start
            sk_inertia = spherical_inertia(
                x.cpu(), torch.from_numpy(km.labels_).long(), torch.from_numpy(km.cluster_centers_))
            rel = (inertia - sk_inertia) / sk_inertia * 100
            print(f'| {n} | {k} | {t_seed + t_lloyd:.2f} | {t_sk:.2f} | {km.n_iter_} '
                  f'| {inertia:.4f} | {sk_inertia:.4f} | {rel:+.2f}% |', flush=True)


def bench_sinkhorn(args, device, num_protos=128):
    print(f'\n### sinkhorn_knopp: time vs N (K={num_protos}, eps 0.05, 3 iterations)\n')
    print('| N | repeats | time (ms) | per 1k pixels (ms) |')
    print('|---:|---:|---:|---:|')
    protos = F.normalize(torch.randn(num_protos, args.channels,
                                     generator=torch.Generator().manual_seed(1)), dim=1)
    for n in args.sizes:
        scores = make_pool(n, args.channels, device) @ protos.to(device).t()  # (N, K)
        repeats = args.repeats if n <= 16000 else args.large_repeats
        t, _ = timed(lambda: sinkhorn_knopp(scores), device, repeats)
        print(f'| {n} | {repeats} | {t * 1e3:.2f} | {t * 1e3 / (n / 1000):.3f} |', flush=True)


def densecl_step_time(device, batch_size, repeats=2):
    """Median time of one DenseCL R50 training step (forward, backward, SGD) at 224 px."""
    from mmengine.hub import get_config
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules

    register_all_modules()
    model = MODELS.build(get_config(DENSECL_CFG).model).to(device).train()
    optim = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    views = [torch.randn(batch_size, 3, 224, 224, generator=gen).to(device) for _ in range(2)]
    samples = [DataSample() for _ in range(batch_size)]

    def step():
        losses = model.loss(views, samples)
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()

    return timed(step, device, repeats, warmup=True)[0]


def bench_share(args, device):
    batches = [b for b in args.densecl_batches if b > 0]
    if not batches:
        return
    print('\n### Share of a DenseCL ResNet-50 training step (224 px)\n')
    steps = {b: densecl_step_time(device, b) for b in batches}
    for b, t in steps.items():
        print(f'- measured DenseCL step, batch {b}: {t:.2f} s')
    if len(steps) >= 2:
        (b0, t0), (b1, t1) = sorted(steps.items())[:2]
        per_image = (t1 - t0) / (b1 - b0)
        fixed = t0 - per_image * b0
        step32 = fixed + 32 * per_image
        print(f'- linear fit t(B) = {fixed:.2f} s + {per_image:.3f} s * B; extrapolated to the '
              f'paper batch of 32 per GPU: {step32:.1f} s')
    else:
        b0, t0 = next(iter(steps.items()))
        step32 = t0 / b0 * 32
        print(f'- per-image scaling of batch {b0} to the paper batch of 32: {step32:.1f} s')
    print('\n| pool N | K | k-means++ (ms, first step only) | 10 Lloyd steps, warm (ms) '
          '| Sinkhorn (ms) | Lloyd / step(32) | Sinkhorn / step(32) |')
    print('|---:|---:|---:|---:|---:|---:|---:|')
    for n in (1568, 12544):
        x = make_pool(n, args.channels, device)
        gen = torch.Generator(device=device)
        t_seed, seeds = timed(lambda: kmeans_plus_plus(x, 128, generator=gen.manual_seed(0)),
                              device, args.repeats)
        t_lloyd, _ = timed(lambda: spherical_kmeans(x, 128, num_iters=args.iters,
                                                    init_centroids=seeds), device, args.repeats)
        protos = F.normalize(torch.randn(128, args.channels, device=device), dim=1)
        scores = x @ protos.t()
        t_sk, _ = timed(lambda: sinkhorn_knopp(scores), device, args.repeats)
        print(f'| {n} | 128 | {t_seed * 1e3:.1f} | {t_lloyd * 1e3:.1f} | {t_sk * 1e3:.2f} '
              f'| {t_lloyd / step32 * 100:.2f}% | {t_sk / step32 * 100:.2f}% |', flush=True)


def main():
    global CLOCK
    args = parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    CLOCK = make_clock(args.clock, device)
    print(f'# Clustering benchmark: torch {torch.__version__}, device {device}, '
          f'{torch.get_num_threads()} threads, clock {args.clock}, '
          f'{platform.processor() or platform.machine()}, python {platform.python_version()}')
    print(f'command: python {" ".join(sys.argv)}')
    start = time.perf_counter()
    # Warm-up (thread pools, kernel selection) so the first timed row is not an outlier.
    spherical_kmeans(make_pool(2000, args.channels, device), 64)
    rows = bench_kmeans(args, device)
    bench_sklearn(args, device, rows)
    bench_sinkhorn(args, device)
    bench_share(args, device)
    print(f'\ntotal wall time {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
