"""Shared pytest fixtures."""
import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# OpenMP threads that wait for work sleep instead of spinning, in this process (if torch is not
# loaded yet) and in every tool, benchmark step and Slurm job the tests start: the suite runs two
# xdist workers and their tools on 2 cores, where a spinning thread holds the core that another
# process needs (`python perf/omp_wait_policy.py` at load 8.7: a 2-thread conv loop 23.5 s wall
# by default, 2.7 s with PASSIVE). Numerics are unchanged: only how idle threads wait.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


def pytest_configure(config):
    """Each pytest-xdist worker computes on one thread: ``make test`` runs 2 workers on 2 cores,
    and 2 x 2 torch threads would contend. (Tools started by the tests set their own threads:
    ``OMP_NUM_THREADS=1``, or a tiny config's ``cpu_numerics``.)"""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch
        torch.set_num_threads(1)


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




#: The tiny DSC-KM config whose first step is compared across process counts (BN in eval mode,
#: fixed views, no shuffling, one iteration); its hook saves each process's first loss terms.
DIST_CONFIG = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_dist.py'


@pytest.fixture(scope='session')
def dist_control(scenes_64, tmp_path_factory) -> Path:
    """The one-process control of the 2-process runs (torchrun and gloo in
    tests/test_reliability/test_distributed.py, 2 Slurm tasks in test_slurm_cluster.py; both
    files share the xdist group ``dist_control``, so it runs once).

    Returns a root with ``two/`` (8 images of ``scenes_64``, read 4 per process), ``one/`` (the
    same images in the order the 2 processes' batches are all-gathered) and ``work1/``: the
    ``DIST_CONFIG`` step on ``one/`` in one process with batch 8 (``iter_1.pth``,
    ``first_losses_rank0.pth``). Without shuffling rank r reads samples r, r+2, r+4, r+6; the
    global batch is therefore 0, 2, 4, 6, 1, 3, 5, 7, the sorted order of ``one/``.
    """
    import shutil
    import subprocess
    import sys
    root = tmp_path_factory.mktemp('dist_control')
    images = sorted((scenes_64 / 'unlabeled').glob('*.jpg'))[:8]
    (root / 'two').mkdir()
    (root / 'one').mkdir()
    for i, image in enumerate(images):
        shutil.copy(image, root / 'two' / f'{i:02d}.jpg')
    for position, i in enumerate([0, 2, 4, 6, 1, 3, 5, 7]):
        shutil.copy(images[i], root / 'one' / f'{position:02d}.jpg')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               PYTHONPATH=str(REPO_ROOT / 'tests' / 'test_reliability'))
    one = subprocess.run([sys.executable, 'tools/train.py', DIST_CONFIG, '--work-dir',
                          str(root / 'work1'), '--cfg-options',
                          f'train_dataloader.dataset.data_root={root}',
                          'train_dataloader.dataset.folders=[one]',
                          'train_dataloader.batch_size=8'],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    return root


#: The groups of the longest runs, started first under xdist so that no worker is left with one
#: of them at the end while the other idles (longest first); measured with --durations.
SLOW_GROUPS = ('dist_control', 'tests/test_benchmark/test_determinism.py', 'tiny_dsc_run',
               'tests/test_benchmark/test_runner.py')


def _group(item) -> str:
    return next(item.iter_markers('xdist_group')).args[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n 2 --dist loadgroup`` (``make test``), keep each test file on one worker
    and start the slowest groups first.

    Most files build module-scoped fixtures (a training run, generated scenes); a file split
    across two xdist workers would build them twice. A file that shares a session fixture with
    another names a common group itself (``pytestmark = pytest.mark.xdist_group('...')``) and
    keeps it. Without xdist the mark is inert and the order is left alone. Runs before xdist's
    own hook, which reads the mark.
    """
    for item in items:
        if not any(item.iter_markers('xdist_group')):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split('::')[0]))
    if hasattr(config, 'workerinput'):  # an xdist worker: its collection order is the queue's
        # A stable sort: the slow groups in SLOW_GROUPS order, then the rest as collected.
        rank = {name: i for i, name in enumerate(SLOW_GROUPS)}
        items.sort(key=lambda item: rank.get(_group(item), len(SLOW_GROUPS)))
