"""Draw the dense semantic clusters of a pretrained backbone over images (one PNG).

Example::

    python tools/visualize_clusters.py work_dirs/dsc-km/iter_300.pth data/scenes/coco/val/*.jpg \
        --out docs/figures/clusters.png --num-clusters 8
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.utils import CheckpointError  # noqa: E402
from dsc_mm.visualization.clusters import visualize_clusters  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='pretraining checkpoint or converted backbone')
    parser.add_argument('images', nargs='+', help='image files (clustered jointly)')
    parser.add_argument('--out', default='clusters.png', help='output PNG')
    parser.add_argument('--num-clusters', type=int, default=8)
    parser.add_argument('--size', type=int, default=224, help='images are resized to SIZE x SIZE')
    parser.add_argument('--encoder', choices=['query', 'key'], default='query')
    parser.add_argument('--max-images', type=int, default=8)
    args = parser.parse_args(argv)
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        sys.exit(f'error: {len(missing)} image file(s) do not exist, e.g. {missing[0]}.')
    try:
        summary = visualize_clusters(args.checkpoint, args.images[:args.max_images], args.out,
                                     args.num_clusters, args.size, args.encoder)
    except (CheckpointError, ValueError) as exc:
        sys.exit(f'error: {exc}')
    print(f"wrote {summary['out']}: {summary['clusters_used']} clusters used on a "
          f"{summary['grid'][0]}x{summary['grid'][1]} feature grid")


if __name__ == '__main__':
    main()
