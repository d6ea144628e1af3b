"""Bad training data: one clear message naming the file(s) and what to do, no checkpoint written;
unusual but valid images train."""
import glob
import uuid

import numpy as np
import pytest
from PIL import Image

from rel_helpers import TINY_DSC, exit_message, load_tool


@pytest.fixture(scope='module')
def train_main():
    return load_tool('train').main


def _good_images(folder, count, size=(64, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'good_{i:02d}.jpg', quality=90)


def _broken_folder(root):
    """6 good JPEGs, one truncated JPEG, one text file named .png."""
    folder = root / 'unlabeled'
    _good_images(folder, 6)
    data = (folder / 'good_00.jpg').read_bytes()
    (folder / 'cut.jpg').write_bytes(data[:len(data) // 2])
    (folder / 'notes.png').write_text('not an image')
    return folder


def _args(work_dir, data_root, *options):
    # A fresh experiment name: in-process Runners of the same second would share the logger
    # (and its log file) of the first one.
    return [TINY_DSC, '--work-dir', work_dir, '--cfg-options',
            f'train_dataloader.dataset.data_root={data_root}',
            f'experiment_name=rel-{uuid.uuid4().hex[:8]}', *options]


def _checkpoints(work_dir):
    return glob.glob(str(work_dir / '**' / '*.pth'), recursive=True)


def test_broken_images_fail_with_the_list_and_no_checkpoint(train_main, tmp_path):
    # In process: the message tools/train.py exits with (sys.exit prints it alone; the CLI's
    # "exit 1, no traceback" is test_bad_config.py's unknown-method test).
    _broken_folder(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    message = exit_message(train_main, _args(work_dir, tmp_path / 'data'))
    assert '\n' not in message
    assert message.startswith('error: ImageFolderDataset: 2 of 8 files under'), message
    assert 'unlabeled/cut.jpg' in message and 'unlabeled/notes.png' in message
    assert "on_bad_image='skip'" in message
    assert _checkpoints(work_dir) == []


def test_skip_leaves_broken_images_out_and_counts_them(train_main, tmp_path):
    _broken_folder(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    train_main([str(a) for a in _args(work_dir, tmp_path / 'data',
                                      'train_dataloader.dataset.on_bad_image=skip',
                                      'train_cfg.max_iters=2')])
    log = open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()
    assert 'ImageFolderDataset: skipped 2 of 8 files' in log
    assert (work_dir / 'iter_2.pth').is_file()


@pytest.mark.parametrize('layout, expected', [
    ('missing', "ImageFolderDataset: data_root '{root}' does not exist"),
    ('empty', 'ImageFolderDataset: no image files'),
    ('no_folder', "ImageFolderDataset: folder 'unlabeled' does not exist under data_root"),
])
def test_missing_or_empty_data_root_is_one_sentence(train_main, tmp_path, layout, expected):
    root = tmp_path / 'data'
    if layout == 'empty':
        (root / 'unlabeled').mkdir(parents=True)
        (root / 'unlabeled' / 'README.txt').write_text('images go here')
    elif layout == 'no_folder':
        root.mkdir()
    work_dir = tmp_path / 'work'
    message = exit_message(train_main, _args(work_dir, root))
    assert message.startswith('error: ' + expected.format(root=root)), message
    assert '\n' not in message and _checkpoints(work_dir) == []


def test_unusual_image_modes_and_small_images_train(train_main, tmp_path):
    # Grayscale, CMYK JPEG, RGBA and palette PNGs, 16-bit grayscale PNG, and images smaller
    # than the 64 px crop (RandomResizedCrop upsamples): all train.
    folder = tmp_path / 'data' / 'unlabeled'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    rgb.convert('L').save(folder / 'gray.jpg')
    rgb.convert('CMYK').save(folder / 'cmyk.jpg')
    rgb.convert('RGBA').save(folder / 'rgba.png')
    rgb.convert('P').save(folder / 'palette.png')
    Image.fromarray(rng.integers(0, 65535, (70, 90), dtype=np.uint16)).save(folder / 'deep.png')
    rgb.resize((20, 24)).save(folder / 'small.jpg')
    rgb.resize((40, 12)).save(folder / 'thin.png')
    rgb.save(folder / 'plain.jpg')
    assert Image.open(folder / 'deep.png').mode.startswith('I;16')
    work_dir = tmp_path / 'work'
    train_main([str(a) for a in _args(work_dir, tmp_path / 'data', 'train_cfg.max_iters=2')])
    from dsc_mm.utils import load_checkpoint_file
    ckpt = load_checkpoint_file(str(work_dir / 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2 and int(ckpt['state_dict']['iter_count']) == 2
    log = open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()
    assert 'skipped' not in log and 'Iter(train) [2/2]' in log
