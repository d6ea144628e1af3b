"""The derived files of ``camvid_mini``: split lists and ``classes.txt`` (SOURCE.md)."""
from pathlib import Path

from .output import write_text

SPLITS = ('train', 'val', 'test')


def derive_camvid(root) -> None:
    """Write ``train.txt``, ``val.txt``, ``test.txt`` (sorted file stems of each image folder)
    and ``classes.txt`` (``"index name"`` per line, the SegNet 11 classes then Unlabelled).

    Args:
        root (str | Path): The ``camvid_mini`` folder, holding ``train/``, ``val/``, ``test/``.
    """
    # The dataset class holds the class names; imported here to keep mmseg out of the module.
    from ..camvid import UNLABELLED, CamVidDataset
    root = Path(root)
    for split in SPLITS:
        stems = sorted(path.stem for path in (root / split).glob('*.png'))
        write_text(root / f'{split}.txt', ''.join(f'{stem}\n' for stem in stems))
    names = list(CamVidDataset.METAINFO['classes'])
    names.insert(UNLABELLED, 'Unlabelled')
    write_text(root / 'classes.txt', ''.join(f'{i} {name}\n' for i, name in enumerate(names)))
