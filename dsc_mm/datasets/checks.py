"""Input checks for data, run before the Runner is built (image files, COCO image lists).

mmdet's ``CocoDataset`` never looks at the image files when it loads an annotation json; a
missing image surfaces later as a dataloader-worker traceback in the middle of training.
"""
import contextlib
import json
import os
import os.path as osp
import sys
import tempfile
from typing import List

import numpy as np

_MAX_LISTED = 5
# What libjpeg prints when it decodes a JPEG whose data was damaged (bytes overwritten or cut
# mid-stream): it fills the missing blocks and returns an image, so only the message tells.
_JPEG_DATA_WARNINGS = ('Corrupt JPEG data', 'Premature end of JPEG file')


@contextlib.contextmanager
def _stderr_fd_captured():
    """Redirect file descriptor 2 (where C libraries print) to a temporary file.

    Yields a function returning what was printed so far.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: (tmp.seek(0), tmp.read().decode(errors='replace'))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def jpeg_data_warnings(data: bytes) -> List[str]:
    """libjpeg's warnings about damaged data when ``data`` (a JPEG file) is decoded.

    PIL silences libjpeg's warnings and returns the patched image, so a JPEG overwritten
    mid-stream decodes "fine" through PIL. OpenCV (the decoder of mmcv's loader) lets libjpeg
    print them on stderr; they are captured here. The decoding is at 1/8 scale (all the
    entropy-coded data is still read, which is where the damage shows), in grayscale.
    Anything else printed meanwhile is passed on to stderr.

    Returns:
        list[str]: The warning lines (empty for an intact file); ``['OpenCV could not
        decode it']`` if OpenCV fails outright.
    """
    import cv2
    buffer = np.frombuffer(data, np.uint8)
    with _stderr_fd_captured() as printed:
        image = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        lines = printed().splitlines()
    warnings = [line.strip() for line in lines if line.startswith(_JPEG_DATA_WARNINGS)]
    other = [line for line in lines if not line.startswith(_JPEG_DATA_WARNINGS)]
    if other:
        print('\n'.join(other), file=sys.stderr)
    if image is None and not warnings:
        warnings = ['OpenCV could not decode it']
    return warnings


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
