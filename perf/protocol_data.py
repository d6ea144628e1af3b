"""Lay out ``data/`` for the four protocol configs from the generated scenes (gpu_smoke stage 5).

The protocol configs read fixed roots relative to where they run (``data/VOCdevkit``,
``data/coco``, ``data/cityscapes``) and, for detection, the class NAMES of VOC and COCO: an
object whose name is not among them is dropped. So that the configs run unchanged (pipelines,
hooks, batch; only ``--cfg-options`` shorten them), this script builds that layout from
``tools/generate_scenes.py``'s output: images, label maps and Cityscapes folders as links, the
six scene classes renamed to the first six classes of VOC and COCO in the annotations it
rewrites, and the image lists the configs name (VOC07 ``test.txt``, VOC12aug ``aug.txt``).

Usage (from the directory the protocol runs will start in)::

    python perf/protocol_data.py SCENES_DIR data
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dsc_mm.datasets.scenes.render import SCENE_CLASSES  # noqa: E402

#: The first six classes of VOC and COCO (mmdet's VOCDataset / CocoDataset METAINFO order).
VOC_NAMES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus')
COCO_NAMES = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus')


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def _lines(path: Path):
    return path.read_text().split()


def layout(scenes: Path, out: Path) -> None:
    """Write the protocol layout under ``out`` (links into ``scenes``); see the module doc."""
    src = scenes / 'VOCdevkit' / 'VOC2012'
    if not (src / 'Annotations').is_dir():
        raise SystemExit(f'{scenes} holds no generated scenes (no VOCdevkit/VOC2012/Annotations); '
                         f'run tools/generate_scenes.py --out {scenes} first.')
    voc = out / 'VOCdevkit' / 'VOC2012'
    (voc / 'Annotations').mkdir(parents=True, exist_ok=True)
    for xml in (src / 'Annotations').glob('*.xml'):
        text = xml.read_text()
        for scene, name in zip(SCENE_CLASSES, VOC_NAMES):
            text = text.replace(f'<name>{scene}</name>', f'<name>{name}</name>')
        (voc / 'Annotations' / xml.name).write_text(text)
    _link(src / 'JPEGImages', voc / 'JPEGImages')
    _link(src / 'SegmentationClass', voc / 'SegmentationClass')
    _link(src / 'SegmentationClass', voc / 'SegmentationClassAug')  # VOC12aug's label folder
    train, val = _lines(src / 'ImageSets/Main/train.txt'), _lines(src / 'ImageSets/Main/val.txt')
    lists = {'Main/trainval.txt': train, 'Main/test.txt': val, 'Segmentation/train.txt': train,
             'Segmentation/aug.txt': train, 'Segmentation/val.txt': val}
    for name, names in lists.items():
        (voc / 'ImageSets' / name).parent.mkdir(parents=True, exist_ok=True)
        (voc / 'ImageSets' / name).write_text(''.join(f'{n}\n' for n in names))
    _link(voc, out / 'VOCdevkit' / 'VOC2007')  # VOC07+12: the same scenes twice

    coco = out / 'coco'
    (coco / 'annotations').mkdir(parents=True, exist_ok=True)
    for split in ('train', 'val'):
        _link(scenes / 'coco' / split, coco / f'{split}2017')
        data = json.loads((scenes / 'coco/annotations' / f'instances_{split}.json').read_text())
        names = dict(zip(SCENE_CLASSES, COCO_NAMES))
        for category in data['categories']:
            category['name'] = names[category['name']]
        (coco / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(data))
    _link(scenes / 'cityscapes', out / 'cityscapes')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('scenes', help='output folder of tools/generate_scenes.py')
    parser.add_argument('out', help='the data/ folder the protocol configs read')
    args = parser.parse_args(argv)
    layout(Path(args.scenes), Path(args.out))
    print(f'protocol layout written to {args.out} (from {args.scenes})')


if __name__ == '__main__':
    main()
