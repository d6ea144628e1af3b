"""Download the real mini datasets from their pinned public sources and derive their labels.

Example::

    python tools/fetch_data.py --out data/mini-real
    python tools/benchmark.py --suite mini-real --data data/mini-real

Writes coco_tiny/ (COCO 2017 instances), coco128_voc/ (VOC 2012 layout) and camvid_mini/ (SegNet
CamVid), 48 MiB downloaded from raw.githubusercontent.com, each file checked against its sha256;
every set carries a SOURCE.md with its origin and licences. Interrupted, it resumes; run again,
it skips the files already there. docs/data.md has the details.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.datasets.fetch import FetchError, fetch_mini_real  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/mini-real', help='output folder '
                        '(default: data/mini-real)')
    parser.add_argument('--mirror', metavar='BASE',
                        help='fetch BASE/OWNER/REPO/COMMIT/PATH instead of '
                        'https://raw.githubusercontent.com/OWNER/REPO/COMMIT/PATH '
                        '(a proxy or a local copy)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.monotonic()
    try:
        summary = fetch_mini_real(args.out, mirror=args.mirror)
    except FetchError as exc:
        print(f'[fetch_data] error: {exc}', file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print('\n[fetch_data] interrupted: rerun the same command to resume.', file=sys.stderr)
        sys.exit(130)
    print(f'[fetch_data] {args.out}: {summary["fetched"]} files fetched '
          f'({summary["bytes"] / 2**20:.1f} MiB), {summary["kept"]} already there, derived '
          f'files written, {time.monotonic() - start:.0f} s. Next: python tools/benchmark.py '
          f'--suite mini-real --data {args.out}')


if __name__ == '__main__':
    main()
