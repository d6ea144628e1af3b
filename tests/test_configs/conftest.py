"""Fixtures of the downstream config tests."""
from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def scenes_root(tmp_path_factory) -> Path:
    """A small procedural scenes dataset (6 train, 2 val images at 128 px)."""
    from dsc_mm.datasets.scenes import generate_scenes
    return generate_scenes(tmp_path_factory.mktemp('data') / 'scenes', num_train=6, num_val=2,
                           num_unlabeled=0, size=128, seed=0)
