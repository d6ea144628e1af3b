"""Cost of ImageFolderDataset's image pre-flight (every file decoded in full before training).

For each image of the folders it times the check that runs at dataset construction,
``dsc_mm.datasets.image_folder.image_problem`` (PIL ``verify`` + full decode as
``LoadImageRGB`` does + libjpeg's warnings through OpenCV for JPEGs), and, for comparison, the
previous check (``verify`` + a 1/8-scale JPEG decode). Each file is read once beforehand so
that both see the page cache. Prints the totals and per-image medians, CPU time of this
process (one thread) and wall time.

Usage (from the repository root)::

    python perf/image_preflight.py --data-root ../shared/data     # the 269 real images
"""
import argparse
import io
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REAL_FOLDERS = ['coco_tiny/train2017', 'coco_tiny/val2017',
                'coco128_voc/VOCdevkit/VOC2012/JPEGImages',
                'camvid_mini/train', 'camvid_mini/val', 'camvid_mini/test']


def draft_check(path):
    """The previous pre-flight: structure + a 1/8-scale decode of JPEGs."""
    from PIL import Image
    with open(path, 'rb') as f:
        data = f.read()
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        if image.format == 'JPEG':
            image.draft(None, (1, 1))
        image.load()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-root', default=os.environ.get('DSC_MM_DATA', '../shared/data'))
    parser.add_argument('--folders', nargs='+', default=REAL_FOLDERS)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from dsc_mm.datasets.image_folder import IMG_EXTENSIONS, image_problem
    paths = sorted(os.path.join(top, name) for folder in args.folders
                   for top, _, names in os.walk(os.path.join(args.data_root, folder))
                   for name in names if name.lower().endswith(IMG_EXTENSIONS))
    size = sum(os.path.getsize(p) for p in paths)
    for path in paths:  # page cache
        with open(path, 'rb') as f:
            f.read()
    print(f'{len(paths)} images ({size / 2**20:.1f} MiB) under {args.data_root}; '
          f'{platform.processor() or platform.machine()}, 1 thread')
    for name, check in (('full decode + libjpeg warnings (now)', image_problem),
                        ('verify + 1/8 JPEG decode (before)', draft_check)):
        cpu, wall = [], []
        for path in paths:
            c0, w0 = time.process_time(), time.perf_counter()
            problem = check(path)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            if problem:
                print(f'  {path}: {problem}')
        print(f'{name}: total CPU {sum(cpu):.2f} s, wall {sum(wall):.2f} s; per image median '
              f'CPU {1e3 * statistics.median(cpu):.1f} ms, max {1e3 * max(cpu):.1f} ms')


if __name__ == '__main__':
    main()
