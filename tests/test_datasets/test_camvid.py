"""CamVidDataset: SegNet layout, Unlabelled (11) -> 255, class subsets, clear errors."""
import numpy as np
import pytest
from PIL import Image

from dsc_mm.datasets.camvid import UNLABELLED, CamVidDataset

SEGNET_CLASSES = ['Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                  'Car', 'Pedestrian', 'Bicyclist', 'Unlabelled']


def _load_annotations():
    from mmseg.datasets.transforms import LoadAnnotations
    return LoadAnnotations()


def _split(root, split, **kwargs):
    return CamVidDataset(data_root=str(root), ann_file=f'{split}.txt',
                         data_prefix=dict(img_path=split, seg_map_path=f'{split}annot'),
                         pipeline=[_load_annotations()], **kwargs)


@pytest.fixture
def fake_camvid(tmp_path):
    """A 2-image CamVid folder whose labels hold every class index 0..11."""
    (tmp_path / 'train').mkdir()
    (tmp_path / 'trainannot').mkdir()
    labels = np.arange(12, dtype=np.uint8).repeat(2).reshape(4, 6)  # (H, W) = (4, 6)
    for stem in ('a', 'b'):
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / 'train' / f'{stem}.png')
        Image.fromarray(labels, mode='L').save(tmp_path / 'trainannot' / f'{stem}.png')
    (tmp_path / 'train.txt').write_text('a\nb\n')
    (tmp_path / 'classes.txt').write_text(
        ''.join(f'{i} {name}\n' for i, name in enumerate(SEGNET_CLASSES)))
    return tmp_path, labels


def test_unlabelled_becomes_ignore(fake_camvid):
    root, labels = fake_camvid
    dataset = _split(root, 'train')
    assert len(dataset) == 2
    assert dataset.metainfo['classes'] == tuple(SEGNET_CLASSES[:UNLABELLED])
    assert len(dataset.metainfo['palette']) == UNLABELLED
    seg = dataset[0]['gt_seg_map']
    expected = labels.copy()
    expected[labels == UNLABELLED] = 255
    np.testing.assert_array_equal(seg, expected)


def test_class_subset_maps_the_rest_to_ignore(fake_camvid):
    root, labels = fake_camvid
    dataset = _split(root, 'train', metainfo=dict(classes=('Road', 'Car')))
    seg = dataset[1]['gt_seg_map']
    expected = np.full_like(labels, 255)
    expected[labels == 3] = 0  # Road
    expected[labels == 8] = 1  # Car
    np.testing.assert_array_equal(seg, expected)
    assert dataset.metainfo['palette'] == [[128, 64, 128], [64, 0, 128]]


def test_other_class_list_is_refused(fake_camvid):
    root, _ = fake_camvid
    (root / 'classes.txt').write_text('0 Road\n1 Sky\n')
    with pytest.raises(ValueError, match='classes.txt'):
        _split(root, 'train')


def test_empty_folder_is_reported(tmp_path):
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError, match='found no'):
        CamVidDataset(data_root=str(tmp_path),
                      data_prefix=dict(img_path='train', seg_map_path='trainannot'))


def test_camvid_mini(shared_data):
    root = shared_data / 'camvid_mini'
    names = [line.split(maxsplit=1)[1] for line in
             (root / 'classes.txt').read_text().splitlines() if line.strip()]
    assert names == SEGNET_CLASSES
    seen_unlabelled = False
    for split, length in (('train', 25), ('val', 8), ('test', 8)):
        dataset = _split(root, split)
        assert len(dataset) == length
        for index in (0, length - 1):
            item = dataset[index]
            seg = item['gt_seg_map']
            raw = np.asarray(Image.open(item['seg_map_path']))
            assert seg.shape == raw.shape == (360, 480)
            assert set(np.unique(seg).tolist()) <= set(range(UNLABELLED)) | {255}
            np.testing.assert_array_equal(seg == 255, raw == UNLABELLED)
            seen_unlabelled |= bool((raw == UNLABELLED).any())
    assert seen_unlabelled, 'no Unlabelled pixel checked: the mapping test did not run'
