"""Training-step time and memory of DSC-KM / DSC-PM against DenseCL and MoCo v2, side by side.

MoCo v2 and DenseCL are mmpretrain's own classes built from mmpretrain's configs; DSC-KM and
DSC-PM come from the project's paper-scale configs (their epoch schedules resolved for ImageNet
at 8 GPUs x 32). All four share IDENTICAL backbone weights (DenseCL and DSC also the same
DenseCL neck) and see the same synthetic batch. ``--phase full`` (default) sets DSC's counter
``iter_count`` past every warm-up so the pixel and semantic terms are ON; ``--phase warmup``
sets it to 0, before the semantic ramp starts, where DSC must cost what DenseCL costs (its
semantic term is skipped: no clustering, no logits).

One step = ``model.loss`` (both encoders, EMA update, queues) + backward + SGD step in
``train()`` mode. After warm-up steps, R rounds run every method once, in an order rotated by one
each round, so slow phases of a shared machine hit all methods alike. Printed (markdown):

1. per method: median forward and backward+SGD time, median step time with IQR and min-max, the
   ratio to DenseCL and the peak memory of a step;
2. a breakdown of DSC's extra parts (neighbour search, pixel pool, clustering / Sinkhorn, the
   semantic loss, the pixel loss), wall-clock timers around the calls, in separate rounds so
   that the timers (which synchronise on CUDA) do not touch the step times of table 1;
3. ``DSC-KM/DenseCL time ratio: 1.02 (median of R)``: median over rounds of the per-round ratio,
   and ``DSC-KM/DenseCL memory ratio: 1.01``.

Memory: on CPU each method runs alone in a child process (peak RSS over its steps minus its RSS
right after building the model, the optimizer and the batch); on CUDA
``torch.cuda.max_memory_allocated`` over one step minus the memory allocated before it.

Usage (from the repository root)::

    python perf/pretrain_step.py --depth 18                       # CPU, ResNet-18
    python perf/pretrain_step.py --depth 50 --batch 4 --threads 1 --clock process
    python perf/pretrain_step.py --phase warmup --methods DenseCL DSC-KM DSC-PM --threads 1 \
        --clock process --no-memory
    python perf/pretrain_step.py --device cuda --batch 32 --amp --channels-last
"""
import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from perf._common import (current_rss_mib, make_clock, peak_rss_mib,  # noqa: E402
                                reset_peak_rss, rotations, summarize, synchronize)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    'MoCo v2': 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    'DenseCL': 'mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py',
    'DSC-KM': os.path.join(REPO, 'configs/pretrain/dsc-km_resnet50_8xb32-coslr-200e_in1k.py'),
    'DSC-PM': os.path.join(REPO, 'configs/pretrain/dsc-pm_resnet50_8xb32-coslr-200e_in1k.py'),
}
BASELINE = 'DenseCL'
DSC_METHODS = ('DSC-KM', 'DSC-PM')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--depth', type=int, choices=[18, 50], default=50, help='ResNet depth')
    parser.add_argument('--batch', type=int, default=4, help='images per view and step')
    parser.add_argument('--size', type=int, default=224, help='crop size in pixels')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds R')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per method first')
    parser.add_argument('--breakdown-rounds', type=int, default=3,
                        help='extra rounds with timers around DSC\'s parts (0: skip)')
    parser.add_argument('--queue-len', type=int, default=65536,
                        help='length of every queue (the papers use 65536)')
    parser.add_argument('--methods', nargs='+', default=list(CONFIGS), choices=list(CONFIGS),
                        metavar='METHOD', help=f'subset of {list(CONFIGS)}')
    parser.add_argument('--phase', choices=['full', 'warmup'], default='full',
                        help='full: every DSC term on; warmup: step 0, before the semantic '
                        'ramp (and the pixel warm-up) starts')
    parser.add_argument('--device', default='cpu', help='torch device: cpu or cuda')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast (CUDA)')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels_last memory format for the models and images')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--clock', choices=['wall', 'process'], default='wall',
                        help='wall: elapsed time; process: CPU time of the process (CPU only; '
                        'with --threads 1 the time on an idle core, robust to a loaded machine)')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory measurement')
    parser.add_argument('--memory-steps', type=int, default=3,
                        help='steps (after warm-up) of each CPU memory child process')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if BASELINE not in args.methods:
        parser.error(f'--methods must include {BASELINE}, the baseline of every ratio.')
    if args.queue_len % args.batch:
        # mmpretrain's MoCo/DenseCL assert it in _dequeue_and_enqueue.
        parser.error(f'--queue-len {args.queue_len} must be a multiple of --batch {args.batch} '
                     f'(mmpretrain\'s MoCo and DenseCL queues require it).')
    return args


def model_cfg(method, args):
    """The method's model dict at the requested depth and queue length."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    path = CONFIGS[method]
    cfg = (get_config(path) if '::' in path else Config.fromfile(path)).model
    cfg.queue_len = args.queue_len
    if args.depth != 50:
        width = 512  # C5 channels of ResNet-18/34
        cfg.backbone.depth = args.depth
        cfg.neck.in_channels = width
        cfg.neck.hid_channels = width
    return cfg


#: Optimizer steps per ImageNet epoch in the paper setting (1,281,167 images, 8 GPUs x 32).
PAPER_STEPS_PER_EPOCH = 1281167 / 256


def past_warmups(model):
    """Iteration at which every schedule of a DSC model is on (pixel, semantic, prototypes)."""
    head = model.semantic_head
    return max(model.dense_start_iters, model.semantic_ramp[1],
               getattr(head, 'freeze_prototypes_iters', 0)) + 1


def set_phase(method, model, phase):
    """Put a DSC model's counter in ``phase`` and check which terms are on there."""
    model.resolve_schedules(PAPER_STEPS_PER_EPOCH)
    model.set_iter(past_warmups(model) if phase == 'full' else 0)
    weights = [float(w) for w in model.loss_weights()]
    if phase == 'full' and min(weights) <= 0:
        raise RuntimeError(f'{method}: loss weights {weights} at iter_count='
                           f'{int(model.iter_count)}; every DSC term must be on.')
    if phase == 'warmup' and model.semantic_on(model.host_iter()):
        raise RuntimeError(f'{method}: the semantic term is on at iter_count=0; the warm-up '
                           f'phase needs a config whose semantic ramp starts later.')


def build_models(args, device):
    """Build the methods with identical backbones (and DenseCL/DSC necks) on ``device``."""
    import dsc_mm.models  # noqa: F401  (registers DSC in mmpretrain's MODELS)
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    models = {}
    for method in args.methods:
        torch.manual_seed(0)
        models[method] = MODELS.build(model_cfg(method, args))
    ref = models[BASELINE]
    for method, model in models.items():
        model.backbone.load_state_dict(ref.backbone.state_dict())
        if type(model.neck) is type(ref.neck):
            model.neck.load_state_dict(ref.neck.state_dict())
        # The EMA key encoder was copied at construction: restart it from the shared weights.
        model.encoder_k.module.load_state_dict(
            nn.Sequential(model.backbone, model.neck).state_dict())
        if hasattr(model, 'iter_count'):
            set_phase(method, model, args.phase)
        model.to(device).train()
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
    return models


def make_batch(args, device):
    """Two normalised synthetic views, shared by every method."""
    gen = torch.Generator().manual_seed(0)
    views = [torch.randn(args.batch, 3, args.size, args.size, generator=gen) for _ in range(2)]
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    return [v.to(device).contiguous(memory_format=fmt) for v in views]


class Stepper:
    """One training step of one model (forward, backward, SGD), timed in two phases."""

    def __init__(self, model, args, device, clock):
        from mmpretrain.structures import DataSample
        self.model = model
        self.device = device
        self.clock = clock
        self.amp = args.amp
        self.samples = [DataSample() for _ in range(args.batch)]
        params = [p for p in model.parameters() if p.requires_grad]
        self.optim = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=1e-4)
        self.last_losses = None

    def __call__(self, views):
        """Run one step; returns (forward seconds, backward + SGD seconds)."""
        synchronize(self.device)
        t0 = self.clock()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            losses = self.model.loss(views, self.samples)
            # mmengine's parse_losses sums the keys containing 'loss' (raw_* are logged only).
            loss = sum(v for k, v in losses.items() if 'loss' in k)
        synchronize(self.device)
        t1 = self.clock()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        synchronize(self.device)
        t2 = self.clock()
        self.last_losses = losses  # read on the host only after the timed rounds
        return t1 - t0, t2 - t1


class PartTimers:
    """Wall-clock timers wrapped around DSC's extra calls, keyed by (method, part)."""

    def __init__(self, device, clock):
        self.device = device
        self.clock = clock
        self.enabled = False
        self.method = None
        self.samples = defaultdict(list)
        self._restore = []

    def wrap(self, owner, attr, part):
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*a, **kw):
            if not self.enabled:
                return original(*a, **kw)
            synchronize(self.device)
            start = self.clock()
            out = original(*a, **kw)
            synchronize(self.device)
            self.samples[(self.method, part)].append(self.clock() - start)
            return out

        setattr(owner, attr, timed)
        self._restore.append((owner, attr, original))

    def install(self, models):
        from dsc_mm.models.heads import prototype_semantic_head
        from dsc_mm.models.selfsup import dsc
        # Module-level names: the functions as the calling modules see them.
        self.wrap(dsc, 'bounded_pixel_pool', 'pixel pool (gather, match rows)')
        self.wrap(prototype_semantic_head, 'sinkhorn_knopp', 'clustering (Sinkhorn)')
        for method in DSC_METHODS:
            if method not in models:
                continue
            model = models[method]
            self.wrap(model.pixel_head, 'find_neighbours', 'neighbour search (k_x top-k)')
            self.wrap(model.pixel_head, 'loss', 'pixel loss forward')
            self.wrap(model.semantic_head, 'loss', 'semantic head forward (all)')
            if hasattr(model.semantic_head, 'cluster'):
                self.wrap(model.semantic_head, 'cluster', 'clustering (k-means)')

    @contextlib.contextmanager
    def active(self, method):
        self.enabled, self.method = True, method
        try:
            yield
        finally:
            self.enabled, self.method = False, None


def run_child(args):
    """Memory of one method alone: peak RSS over its steps minus RSS after the build (CPU)."""
    device = torch.device('cpu')
    clock = make_clock('wall', device)
    args.methods = [BASELINE] if args.child == BASELINE else [BASELINE, args.child]
    models = build_models(args, device)
    model = models[args.child]
    del models  # the baseline was only needed for the shared weights
    stepper = Stepper(model, args, device, clock)
    views = make_batch(args, device)
    import gc
    gc.collect()
    base = current_rss_mib()
    # The build (two models for DSC, for the shared weights) may peak above the steps.
    was_reset = reset_peak_rss()
    peak_before = peak_rss_mib()
    for _ in range(args.warmup + args.memory_steps):
        stepper(views)
    peak = peak_rss_mib()
    print(json.dumps(dict(method=args.child, base_mib=base, peak_mib=peak, reset=was_reset,
                          peak_before_mib=peak_before, delta_mib=peak - base)))


def cpu_memory(args):
    """Run every method in its own child process; returns {method: MiB over the build}."""
    out = {}
    for method in args.methods:
        cmd = [sys.executable, os.path.abspath(__file__), '--child', method,
               '--depth', str(args.depth), '--batch', str(args.batch), '--size', str(args.size),
               '--queue-len', str(args.queue_len), '--warmup', str(args.warmup),
               '--memory-steps', str(args.memory_steps), '--phase', args.phase]
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        if args.channels_last:
            cmd.append('--channels-last')
        # A fixed glibc mmap threshold: every buffer >= 128 KiB is mapped and unmapped on free,
        # so RSS follows the live tensors. glibc's default raises the threshold after frees,
        # parks freed tensors on the heap and made the same child's peak vary by +-5%.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if result.returncode != 0:
            raise RuntimeError(f'the memory child for {method} failed:\n{result.stderr[-2000:]}')
        record = json.loads(result.stdout.strip().splitlines()[-1])
        if record['peak_before_mib'] > record['peak_mib'] - 1:
            print(f'note: {method}: the peak RSS could not be reset after the build and the '
                  f'build peaked above the steps; its memory figure is not the step\'s.')
        out[method] = record['delta_mib']
    return out


def cuda_memory(steppers, views, device):
    """Peak CUDA memory of one step over the memory allocated before it, in MiB."""
    out = {}
    for method, stepper in steppers.items():
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        stepper(views)
        out[method] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return out


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        run_child(args)
        return
    clock = make_clock(args.clock, device)
    start = time.perf_counter()
    print(f'# Pretraining step benchmark: torch {torch.__version__}, device {device}'
          f'{" (" + torch.cuda.get_device_name(device) + ")" if device.type == "cuda" else ""}, '
          f'{torch.get_num_threads()} threads, clock {args.clock}, '
          f'{platform.processor() or platform.machine()}, python {platform.python_version()}')
    print(f'command: python {" ".join(sys.argv)}')
    print(f'ResNet-{args.depth}, batch {args.batch} per view, {args.size} px, queue '
          f'{args.queue_len}, phase {args.phase}, amp {args.amp}, '
          f'channels_last {args.channels_last}, '
          f'{args.warmup} warm-up steps, {args.repeats} rounds\n')

    models = build_models(args, device)
    views = make_batch(args, device)
    steppers = {m: Stepper(model, args, device, clock) for m, model in models.items()}
    for method in args.methods:  # warm-up: thread pools, allocator, DSC-KM's k-means++ step
        for _ in range(args.warmup):
            steppers[method](views)

    fwd, bwd, total = defaultdict(list), defaultdict(list), defaultdict(list)
    ratio = defaultdict(list)  # per round, so both steps of a ratio saw the same load
    for order in rotations(args.methods, args.repeats):
        this_round = {}
        for method in order:
            f, b = steppers[method](views)
            fwd[method].append(f)
            bwd[method].append(b)
            total[method].append(f + b)
            this_round[method] = f + b
        for method in args.methods:
            ratio[method].append(this_round[method] / this_round[BASELINE])

    timers = PartTimers(device, clock)
    if args.breakdown_rounds > 0:
        timers.install(models)
        dsc_methods = [m for m in args.methods if m in DSC_METHODS]
        for order in rotations(dsc_methods, args.breakdown_rounds):
            for method in order:
                with timers.active(method):
                    steppers[method](views)

    memory = {}
    if not args.no_memory:
        memory = cuda_memory(steppers, views, device) if device.type == 'cuda' else \
            cpu_memory(args)

    print('| method | forward (ms) | backward + SGD (ms) | step median (ms) | IQR (ms) | '
          'min-max (ms) | time / DenseCL | peak step memory (MiB) | memory / DenseCL | '
          'loss (last step) |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for method in args.methods:
        s = summarize(total[method])
        mem = memory.get(method)
        mem_txt = f'{mem:.0f}' if mem is not None else '-'
        mem_ratio = f'{mem / memory[BASELINE]:.3f}' if mem is not None else '-'
        loss = sum(float(v.detach()) for k, v in steppers[method].last_losses.items()
                   if 'loss' in k)
        print(f'| {method} | {statistics.median(fwd[method]) * 1e3:.0f} | '
              f'{statistics.median(bwd[method]) * 1e3:.0f} | {s["median"] * 1e3:.0f} | '
              f'{s["q1"] * 1e3:.0f}-{s["q3"] * 1e3:.0f} | {s["min"] * 1e3:.0f}-'
              f'{s["max"] * 1e3:.0f} | {statistics.median(ratio[method]):.3f} | {mem_txt} | '
              f'{mem_ratio} | {loss:.3f} |')

    if timers.samples:
        print(f'\nDSC\'s extra parts (median of {args.breakdown_rounds} separate rounds, '
              f'forward only; % of the method\'s median step):\n')
        print('| method | part | median (ms) | % of step |')
        print('|---|---|---:|---:|')
        for (method, part), values in sorted(timers.samples.items()):
            med = statistics.median(values)
            print(f'| {method} | {part} | {med * 1e3:.2f} | '
                  f'{med / statistics.median(total[method]) * 100:.2f}% |')

    print()
    for method in args.methods:
        if method == BASELINE:
            continue
        print(f'{method}/{BASELINE} time ratio: {statistics.median(ratio[method]):.2f} '
              f'(median of {args.repeats})')
        if memory:
            print(f'{method}/{BASELINE} memory ratio: '
                  f'{memory[method] / memory[BASELINE]:.2f}')
    print(f'\ntotal wall time {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
