"""Write the procedural scene dataset (COCO, VOC and Cityscapes layouts + unlabelled images).

Example::

    python tools/generate_scenes.py --out data/scenes --seed 0

The defaults (160 train, 40 val, 400 unlabelled, 256 px) suit the 15-minute CPU demo: about
6 s of CPU time and 41 MiB. A second call with the same arguments returns at once.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dsc_mm.datasets.scenes import (DEFAULT_NUM_TRAIN, DEFAULT_NUM_UNLABELED,  # noqa: E402
                                    DEFAULT_NUM_VAL, DEFAULT_SIZE, generate_scenes)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/scenes', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument('--num-val', type=int, default=DEFAULT_NUM_VAL)
    parser.add_argument('--num-unlabeled', type=int, default=DEFAULT_NUM_UNLABELED)
    parser.add_argument('--size', type=int, default=DEFAULT_SIZE, help='image side in pixels')
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                        help='rendering processes (the output does not depend on it)')
    return parser.parse_args(argv)


class _Progress:
    """Prints one line per tenth of each split, readable both in a terminal and in CI logs."""

    def __init__(self):
        self.calls = 0
        self.start = time.time()

    def __call__(self, split: str, done: int, total: int) -> None:
        self.calls += 1
        step = max(1, total // 10)
        if done % step == 0 or done == total:
            print(f'[generate_scenes] {split:9s} {done:5d}/{total} '
                  f'({time.time() - self.start:.1f} s)', flush=True)


def main(argv=None):
    args = parse_args(argv)
    progress = _Progress()
    out = generate_scenes(args.out, num_train=args.num_train, num_val=args.num_val,
                          num_unlabeled=args.num_unlabeled, size=args.size, seed=args.seed,
                          num_workers=args.workers, progress=progress)
    if progress.calls == 0:
        print(f'[generate_scenes] {out} is up to date (same parameters in meta.json).')
    else:
        print(f'[generate_scenes] wrote {out} in {time.time() - progress.start:.1f} s; '
              f'see {out / "README.md"}.')


if __name__ == '__main__':
    main()
