"""Convert a DSC / DenseCL / MoCo v2 pretraining checkpoint into a backbone for transfer.

Examples:
    python tools/convert_checkpoint.py epoch_200.pth r50_dsc_mmdet.pth --to mmdet
    python tools/convert_checkpoint.py epoch_200.pth r50_dsc_d2.pkl --to detectron2 --depth 50
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.transfer import TARGETS, convert_checkpoint  # noqa: E402
from dsc_mm.utils import CheckpointError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='mmpretrain pretraining checkpoint or a torchvision-keyed '
                        'backbone (.pth)')
    parser.add_argument('dst', help='output file (.pth; .pkl for detectron2), written atomically')
    parser.add_argument('--to', required=True, choices=TARGETS, help='target framework')
    parser.add_argument('--encoder', default='query', choices=('query', 'key'),
                        help='query encoder (default) or the EMA key encoder')
    parser.add_argument('--depth', type=int, choices=(18, 34, 50, 101),
                        help='expected ResNet depth; refuse a checkpoint of another depth')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        print(convert_checkpoint(args.src, args.dst, args.to, args.encoder, args.depth))
    except CheckpointError as exc:
        print(f'convert_checkpoint: error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
