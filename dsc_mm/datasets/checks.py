"""Input checks for downstream data, run by ``tools/train.py`` before the Runner is built.

mmdet's ``CocoDataset`` never looks at the image files when it loads an annotation json; a
missing image surfaces later as a dataloader-worker traceback in the middle of training.
"""
import json
import os.path as osp

_MAX_LISTED = 5


def check_coco_images(ann_file: str, img_dir: str) -> int:
    """Check that every image listed by a COCO annotation file exists under ``img_dir``.

    Args:
        ann_file (str): The COCO json (``images[*].file_name`` relative to ``img_dir``).
        img_dir (str): The image folder (``data_root`` joined with ``data_prefix.img``).

    Returns:
        int: The number of images checked.

    Raises:
        ValueError: One sentence naming the annotation file, the first missing images and
            what to fix (a missing or unreadable json is reported the same way).
    """
    if not osp.isfile(ann_file):
        raise ValueError(f'Annotation file {ann_file} does not exist; check data_root and '
                         f'ann_file of the dataset in the config.')
    try:
        with open(ann_file) as f:
            images = json.load(f)['images']
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'Annotation file {ann_file} is not a COCO json with an "images" list '
                         f'({type(exc).__name__}: {exc}); pass a COCO-format annotation '
                         f'file.') from None
    missing = [image['file_name'] for image in images
               if not osp.isfile(osp.join(img_dir, image['file_name']))]
    if missing:
        listed = ', '.join(missing[:_MAX_LISTED])
        more = f' and {len(missing) - _MAX_LISTED} more' if len(missing) > _MAX_LISTED else ''
        raise ValueError(
            f'{len(missing)} of {len(images)} images listed in {ann_file} are missing under '
            f'{img_dir}: {listed}{more}; fix data_prefix.img in the config or restore the '
            f'files.')
    return len(images)
