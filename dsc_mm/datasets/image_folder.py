"""Unlabelled image folders for pretraining, and a loader that turns any image into 3-channel uint8.

Real image collections mix modes (grayscale, CMYK JPEGs, RGBA or palette PNGs, 16-bit scans) and
sometimes hold broken files; a pretraining run should learn about them at construction, in one
sentence, not crash hours later in a dataloader worker.
"""
import io
import os.path as osp
from fnmatch import fnmatch
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import MMLogger
from PIL import Image, ImageOps

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import get_samples
from mmpretrain.registry import DATASETS, TRANSFORMS

from .checks import jpeg_data_warnings

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
_MAX_LISTED = 10


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode an image file of any PIL mode to RGB uint8 (H, W, 3).

    EXIF orientation is applied (as OpenCV's ``IMREAD_COLOR`` does for mmcv's loader), alpha is
    dropped (as OpenCV does), and 16-bit images are scaled to 8 bits: ``PIL.convert`` would clip
    them, turning most 16-bit scans white.
    """
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in _SIXTEEN_BIT_MODES:
            values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
            gray = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
            return np.repeat(gray[..., None], 3, axis=2)
        return np.asarray(image.convert('RGB'))


def image_problem(path: str, backend_args: Optional[dict] = None) -> Optional[str]:
    """Why ``path`` is not a fully readable image (a short reason), or None when it is.

    ``Image.verify`` checks the structure (PNG chunk CRCs included); then the image is decoded
    in full, exactly as :class:`LoadImageRGB` will (:func:`decode_rgb`), which notices a
    truncated file or a broken data stream. A JPEG is also decoded by libjpeg through OpenCV,
    and a libjpeg warning about damaged data (bytes overwritten mid-stream, which PIL silently
    patches with gray blocks) counts as corrupt
    (:func:`~dsc_mm.datasets.checks.jpeg_data_warnings`).
    Damage that leaves a valid stream (JPEG has no checksum) cannot be noticed.
    """
    try:
        data = fileio.get(path, backend_args=backend_args)
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            image.verify()
        decode_rgb(data)
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return f'{type(error).__name__}: {error}'.splitlines()[0][:120]
    if image_format == 'JPEG':
        warnings = jpeg_data_warnings(data)
        if warnings:
            return f'libjpeg: {warnings[0]}'[:120]
    return None


@DATASETS.register_module()
class ImageFolderDataset(CustomDataset):
    """All images found (recursively) in some folders of a root, without labels.

    Args:
        data_root (str): the root folder.
        folders (str | Sequence[str], optional): sub-folders of ``data_root`` to read; every
            image below them is used, so list image folders only (never label-PNG folders).
            Defaults to None: ``data_root`` itself.
        exclude (Sequence[str]): glob patterns; a file is left out when a pattern matches its
            path relative to ``data_root`` or any folder name on that path (e.g. ``'*annot*'``,
            ``'SegmentationClass*'``).
        extensions (Sequence[str]): file name endings that count as images.
        on_bad_image (str): what to do with files that do not decode as images: ``'fail'``
            raises one error listing them, ``'skip'`` leaves them out with a warning.
        **kwargs: other arguments of mmpretrain's ``BaseDataset`` (``pipeline``, ...).
    """

    def __init__(self,
                 data_root: str,
                 folders: Union[str, Sequence[str], None] = None,
                 exclude: Sequence[str] = (),
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 on_bad_image: str = 'fail',
                 **kwargs):
        if on_bad_image not in ('fail', 'skip'):
            raise ValueError(f"ImageFolderDataset: on_bad_image={on_bad_image!r} is not "
                             "supported; pass 'fail' or 'skip'.")
        if not data_root:
            raise ValueError('ImageFolderDataset: data_root is empty; pass the folder that '
                             "holds the pretraining images (e.g. data_root='data/scenes', "
                             "folders=['unlabeled']).")
        data_root = osp.expanduser(str(data_root))
        self.folders = [folders] if isinstance(folders, str) else list(folders or [''])
        self.exclude = tuple(exclude)
        self.on_bad_image = on_bad_image
        self.skipped: List[Tuple[str, str]] = []  # (path, reason) of the files left out
        super().__init__(data_root=data_root, with_label=False, extensions=extensions, **kwargs)

    def _excluded(self, relative: str) -> bool:
        parts = [relative, *relative.split('/')]
        return any(fnmatch(part, pattern) for pattern in self.exclude for part in parts)

    def _find_samples(self) -> List[str]:
        """Image paths relative to ``data_root``, sorted, checked per ``on_bad_image``."""
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f"ImageFolderDataset: data_root '{root}' does not exist or is not a folder; "
                'pass the folder that holds the pretraining images.')
        paths = [osp.join(root, folder) if folder else root for folder in self.folders]
        for folder, path in zip(self.folders, paths):
            if not osp.isdir(path):
                raise FileNotFoundError(
                    f"ImageFolderDataset: folder '{folder}' does not exist under data_root "
                    f"'{root}'; fix the folders list.")
        extensions = ', '.join(sorted(self.extensions))
        samples = set()
        for folder, path in zip(self.folders, paths):
            found, _ = get_samples(path, None, is_valid_file=self.is_valid_file)
            found = [osp.join(folder, f).replace(osp.sep, '/') if folder else f for f in found]
            found = [f for f in found if not self._excluded(f)]
            if not found:
                raise FileNotFoundError(
                    f"ImageFolderDataset: no image files ({extensions}) under '{path}' "
                    f'(exclude={list(self.exclude)}); pass a folder that holds images.')
            samples.update(found)
        return self._check_images(sorted(samples))

    def _check_images(self, samples: List[str]) -> List[str]:
        bad = []
        for sample in samples:
            reason = image_problem(osp.join(self.data_root, sample))
            if reason is not None:
                bad.append((sample, reason))
        if not bad:
            return samples
        listed = '; '.join(f'{name} ({reason})' for name, reason in bad[:_MAX_LISTED])
        more = f' and {len(bad) - _MAX_LISTED} more' if len(bad) > _MAX_LISTED else ''
        if self.on_bad_image == 'fail':
            raise ValueError(
                f"ImageFolderDataset: {len(bad)} of {len(samples)} files under "
                f"'{self.data_root}' are not readable images: {listed}{more}; remove or "
                "replace them, or pass on_bad_image='skip' to leave them out.")
        self.skipped = bad
        MMLogger.get_current_instance().warning(
            f"ImageFolderDataset: skipped {len(bad)} of {len(samples)} files under "
            f"'{self.data_root}' that are not readable images: {listed}{more}.")
        bad_names = {name for name, _ in bad}
        return [s for s in samples if s not in bad_names]


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Load an image of any mode as 3-channel uint8, BGR by default like mmcv's loader.

    A drop-in replacement for ``LoadImageFromFile`` in pretraining pipelines: the output follows
    the same BGR convention, which mmpretrain's MoCo pipeline (``RandomGrayscale`` weights in BGR
    order) and ``SelfSupDataPreprocessor(to_rgb=True)`` expect. Unlike OpenCV it reads CMYK JPEGs
    and scales 16-bit images to 8 bits (see :func:`decode_rgb`).

    Required keys: ``img_path``. Added keys: ``img`` (H, W, 3) uint8, ``img_shape``,
    ``ori_shape``.

    Args:
        channel_order (str): ``'bgr'`` (mmcv's convention) or ``'rgb'``.
        to_float32 (bool): return a float32 image, as ``LoadImageFromFile`` can.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self, channel_order: str = 'bgr', to_float32: bool = False,
                 backend_args: Optional[dict] = None):
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"LoadImageRGB: channel_order={channel_order!r} is not supported; "
                             "pass 'bgr' or 'rgb'.")
        self.channel_order = channel_order
        self.to_float32 = to_float32
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            img = decode_rgb(fileio.get(path, backend_args=self.backend_args))
        except Exception as error:
            raise OSError(f"LoadImageRGB could not decode '{path}' ({error}); remove the file, "
                          "or build ImageFolderDataset with on_bad_image='skip'.") from error
        if self.channel_order == 'bgr':
            img = np.ascontiguousarray(img[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(channel_order={self.channel_order!r}, '
                f'to_float32={self.to_float32}, backend_args={self.backend_args})')
