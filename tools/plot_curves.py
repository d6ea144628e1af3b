"""Plot the loss-term curves of a pretraining run and print first/last window means.

Example::

    python tools/plot_curves.py work_dirs/real_dsc_km --out docs/figures/dsc-km_tiny_real_curves.png
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.visualization import (DEFAULT_KEYS, find_scalars, plot_curves,  # noqa: E402
                                  read_scalars, window_means)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='work dir of the run, or a scalars.json file')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--keys', nargs='+', default=list(DEFAULT_KEYS),
                        help='logged keys to plot (those absent are skipped)')
    parser.add_argument('--window', type=int, default=20,
                        help='iterations averaged at the start and at the end')
    args = parser.parse_args(argv)
    try:
        path = find_scalars(args.work_dir)
        series = read_scalars(path)
        drawn = plot_curves(series, args.keys, args.out, title=os.path.basename(
            os.path.normpath(args.work_dir)))
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f'error: {exc}')
    print(f'{path} -> {args.out}')
    print(f'{"key":<18} first {args.window} it   last {args.window} it')
    for key in drawn:
        first, last = window_means(series[key], args.window)
        print(f'{key:<18} {first:12.4f} {last:12.4f}')


if __name__ == '__main__':
    main()
