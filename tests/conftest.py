"""Shared pytest fixtures."""
import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """The repository root (configs/ and tools/ live there)."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def load_script():
    """Import a script of the repository from its file: ``load_script('tools/train.py')``.

    tools/ and perf/ are folders of scripts, not packages; putting them on ``sys.path`` would
    let tools/test.py shadow the standard library's ``test``.
    """
    def load(relative_path: str):
        path = REPO_ROOT / relative_path
        spec = importlib.util.spec_from_file_location(f'dsc_mm_script_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The real mini datasets (``DSC_MM_DATA``, e.g. ``../shared/data``); skip when absent."""
    root = os.environ.get('DSC_MM_DATA')
    if not root:
        pytest.skip('DSC_MM_DATA is not set: the real mini datasets are not available here '
                    '(CI sets it to ../shared/data).')
    if not Path(root).is_dir():
        pytest.skip(f'DSC_MM_DATA={root} is not a directory: the real mini datasets are absent.')
    return Path(root)


@pytest.fixture(scope='session')
def tiny_image_folder(tmp_path_factory) -> Path:
    """A folder of 12 small random JPEG images (for runs that need real files)."""
    import numpy as np
    from PIL import Image
    root = tmp_path_factory.mktemp('tiny_images')
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f'{i:03d}.jpg')
    return root


@pytest.fixture(scope='session')
def scenes_64(tmp_path_factory) -> Path:
    """The shared 64 px procedural scenes: 4 train, 2 val and 12 unlabeled images, in every
    layout ``generate_scenes`` writes (``<root>/coco``, ``<root>/VOCdevkit``, ``<root>/unlabeled``
    ...). Read-only for the tests: one set for the reliability runs, the probe cell and the
    linear evaluation (the detection configs need the 128 px set of tests/test_configs)."""
    from dsc_mm.datasets.scenes import generate_scenes
    return generate_scenes(tmp_path_factory.mktemp('scenes_64') / 'scenes', num_train=4,
                           num_val=2, num_unlabeled=12, size=64, seed=0)
