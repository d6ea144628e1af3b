"""ImageFolderDataset + LoadImageRGB: discovery, clear errors, bad files, any mode -> 3x uint8."""
import copy

import cv2
import numpy as np
import pytest
from PIL import Image

from dsc_mm.datasets.image_folder import ImageFolderDataset, LoadImageRGB, image_problem

REAL_FOLDERS = ['coco_tiny/train2017', 'coco_tiny/val2017',
                'coco128_voc/VOCdevkit/VOC2012/JPEGImages',
                'camvid_mini/train', 'camvid_mini/val', 'camvid_mini/test']


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _paths(dataset, root):
    """Image paths relative to ``root`` (``data_list`` itself is emptied by serialisation)."""
    return [dataset.get_data_info(i)['img_path'][len(str(root)) + 1:]
            for i in range(len(dataset))]


def test_real_mini_datasets_give_269_images(shared_data):
    listed = ImageFolderDataset(str(shared_data), folders=REAL_FOLDERS)
    assert len(listed) == 269
    # The whole root minus the label folders is the same set, in the same order.
    everything = ImageFolderDataset(
        str(shared_data), exclude=['*annot*', 'SegmentationClass*', 'SegmentationObject*'])
    assert _paths(everything, shared_data) == _paths(listed, shared_data)
    assert not any('annot' in p or 'Segmentation' in p for p in _paths(everything, shared_data))


def test_finds_images_recursively_sorted_with_excludes(tmp_path):
    files = ['b/z.webp', 'a/x.JPG', 'a/sub/y.png', 'a/sub/w.bmp', 'a/camannot/l.png',
             'a/SegmentationClass/s.png', 'c/q.jpeg']
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb()).save(tmp_path / name, format=Image.registered_extensions()[
            '.' + name.rsplit('.', 1)[1].lower()])
    (tmp_path / 'a' / 'notes.txt').write_text('not an image')
    dataset = ImageFolderDataset(str(tmp_path), folders=['b', 'a'],
                                 exclude=['*annot*', 'SegmentationClass*'])
    assert _paths(dataset, tmp_path) == ['a/sub/w.bmp', 'a/sub/y.png', 'a/x.JPG', 'b/z.webp']
    single = ImageFolderDataset(str(tmp_path), folders='c')
    assert _paths(single, tmp_path) == ['c/q.jpeg']
    whole = ImageFolderDataset(str(tmp_path))  # a listed folder is taken as given
    assert len(whole) == len(files)


def test_missing_or_empty_roots_are_named(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match=f"data_root '{missing}' does not exist"):
        ImageFolderDataset(str(missing))
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(FileNotFoundError, match=r"no image files .* under '.*empty'"):
        ImageFolderDataset(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match="folder 'ghost' does not exist"):
        ImageFolderDataset(str(tmp_path), folders=['empty', 'ghost'])
    with pytest.raises(ValueError, match='data_root is empty'):
        ImageFolderDataset('')
    with pytest.raises(ValueError, match="on_bad_image='ignore' is not supported"):
        ImageFolderDataset(str(tmp_path), on_bad_image='ignore')


@pytest.fixture
def folder_with_bad_files(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / 'good.jpg', quality=95)
    Image.fromarray(_rgb(64, 64, 1)).save(tmp_path / 'good.png')
    jpeg = (tmp_path / 'good.jpg').read_bytes()
    (tmp_path / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    png = (tmp_path / 'good.png').read_bytes()
    (tmp_path / 'corrupt.png').write_bytes(png[:40] + bytes(200) + png[240:])
    (tmp_path / 'text.jpg').write_text('this is not a JPEG')
    return tmp_path


def test_bad_files_fail_with_one_error_listing_them(folder_with_bad_files):
    with pytest.raises(ValueError) as error:
        ImageFolderDataset(str(folder_with_bad_files))
    message = str(error.value)
    assert '3 of 5 files' in message and "on_bad_image='skip'" in message
    for name in ('truncated.jpg', 'corrupt.png', 'text.jpg'):
        assert name in message
    assert 'good' not in message


def test_bad_files_are_skipped_and_logged(folder_with_bad_files, monkeypatch):
    from mmengine.logging import MMLogger
    warnings = []
    logger = MMLogger.get_current_instance()
    monkeypatch.setattr(logger, 'warning', warnings.append)
    dataset = ImageFolderDataset(str(folder_with_bad_files), on_bad_image='skip')
    assert _paths(dataset, folder_with_bad_files) == ['good.jpg', 'good.png']
    assert sorted(name for name, _ in dataset.skipped) == \
        ['corrupt.png', 'text.jpg', 'truncated.jpg']
    assert len(warnings) == 1 and 'skipped 3 of 5 files' in warnings[0]


def test_jpeg_overwritten_mid_stream_is_refused(tmp_path):
    # 512 bytes in the middle of the entropy-coded data overwritten with zeros (not cut): PIL
    # decodes it without complaint (libjpeg only warns, and PIL silences it) into a picture
    # whose lower part is garbage; the check decodes it through libjpeg's warnings too.
    Image.fromarray(_rgb(128, 128)).save(tmp_path / 'good.jpg', quality=90)
    data = bytearray((tmp_path / 'good.jpg').read_bytes())
    middle = len(data) // 2
    data[middle:middle + 512] = bytes(512)
    (tmp_path / 'overwritten.jpg').write_bytes(bytes(data))
    with Image.open(tmp_path / 'overwritten.jpg') as image:
        image.load()  # the control: PIL alone accepts it
    assert image_problem(str(tmp_path / 'good.jpg')) is None
    assert image_problem(str(tmp_path / 'overwritten.jpg')).startswith(
        'libjpeg: Corrupt JPEG data: ')
    with pytest.raises(ValueError, match=r"1 of 2 files .*: overwritten\.jpg \(libjpeg: Corrupt "
                                         r"JPEG data: .*\); remove or replace them"):
        ImageFolderDataset(str(tmp_path))


def test_long_lists_of_bad_files_are_shortened(tmp_path):
    for i in range(12):
        (tmp_path / f'bad{i:02d}.png').write_bytes(b'nope')
    with pytest.raises(ValueError, match='12 of 12 files .* and 2 more') as error:
        ImageFolderDataset(str(tmp_path))
    assert 'bad09.png' in str(error.value) and 'bad10.png' not in str(error.value)


def _load(path, **kwargs):
    return LoadImageRGB(**kwargs)(dict(img_path=str(path)))['img']


def test_every_mode_becomes_hxwx3_uint8_bgr(tmp_path):
    h, w = 5, 7
    palette = Image.new('P', (w, h), 3)
    palette.putpalette([0, 0, 0] * 3 + [200, 100, 0])
    cases = {  # file -> (PIL image, expected RGB pixel at (0, 0))
        'gray.png': (Image.new('L', (w, h), 77), (77, 77, 77)),
        'bits.png': (Image.new('1', (w, h), 1), (255, 255, 255)),
        'rgba.png': (Image.new('RGBA', (w, h), (10, 20, 30, 128)), (10, 20, 30)),
        'gray_alpha.png': (Image.new('LA', (w, h), (90, 0)), (90, 90, 90)),
        'palette.png': (palette, (200, 100, 0)),
        'cmyk.jpg': (Image.new('CMYK', (w, h), (0, 255, 255, 0)), (255, 0, 0)),
        'sixteen.png': (Image.fromarray(np.full((h, w), 257 * 123, np.uint16)), (123, 123, 123)),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name, quality=100) if name.endswith('.jpg') else \
            image.save(tmp_path / name)
        img = _load(tmp_path / name)
        assert img.shape == (h, w, 3) and img.dtype == np.uint8, name
        tolerance = 3 if name.endswith('.jpg') else 0
        np.testing.assert_allclose(img[0, 0], expected[::-1], atol=tolerance, err_msg=name)
    assert Image.open(tmp_path / 'sixteen.png').mode == 'I;16'
    assert Image.open(tmp_path / 'cmyk.jpg').mode == 'CMYK'


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    ramp = np.array([[0, 256, 257, 32896, 65279, 65535]], np.uint16)
    Image.fromarray(ramp).save(tmp_path / 'ramp.png')
    img = _load(tmp_path / 'ramp.png', channel_order='rgb')
    assert img[0, :, 0].tolist() == [0, 1, 1, 128, 254, 255]


def test_bgr_like_mmcv_loader_and_rgb_option(tmp_path):
    from mmcv.transforms import LoadImageFromFile
    Image.fromarray(_rgb(9, 11)).save(tmp_path / 'colour.png')
    ours = _load(tmp_path / 'colour.png')
    mmcv_img = LoadImageFromFile()(dict(img_path=str(tmp_path / 'colour.png')))['img']
    np.testing.assert_array_equal(ours, mmcv_img)
    np.testing.assert_array_equal(_load(tmp_path / 'colour.png', channel_order='rgb'),
                                  ours[..., ::-1])
    results = LoadImageRGB(to_float32=True)(dict(img_path=str(tmp_path / 'colour.png')))
    assert results['img'].dtype == np.float32 and results['img_shape'] == (9, 11)
    with pytest.raises(OSError, match="could not decode '.*missing.png'"):
        _load(tmp_path / 'missing.png')


def test_exif_orientation_is_applied_like_opencv(tmp_path):
    image = Image.fromarray(_rgb(20, 40))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    image.save(tmp_path / 'rotated.jpg', exif=exif)
    assert _load(tmp_path / 'rotated.jpg').shape == cv2.imread(str(tmp_path / 'rotated.jpg')).shape
    assert _load(tmp_path / 'rotated.jpg').shape == (40, 20, 3)


def test_mocov2_two_views_of_an_image_smaller_than_the_crop(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS, MODELS
    import mmpretrain
    base = Config.fromfile(
        f'{mmpretrain.__path__[0]}/.mim/configs/_base_/datasets/imagenet_bs32_mocov2.py')
    pipeline = copy.deepcopy(base.train_pipeline)
    assert pipeline[0]['type'] == 'LoadImageFromFile'
    pipeline[0] = dict(type='LoadImageRGB')
    pipeline[1]['transforms'][0][0]['scale'] = 64
    Image.fromarray(_rgb(32, 32)).convert('L').save(tmp_path / 'small.png')  # gray and tiny
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(type='ImageFolderDataset', data_root=str(tmp_path),
                                      pipeline=pipeline))
        item = dataset[0]
        preprocessor = MODELS.build(base.data_preprocessor)
    views = item['inputs']
    assert len(views) == 2
    assert all(v.shape == (3, 64, 64) and str(v.dtype) == 'torch.uint8' for v in views)
    batch = preprocessor(dict(inputs=[v[None] for v in views],
                              data_samples=[item['data_samples']]))
    assert [tuple(v.shape) for v in batch['inputs']] == [(1, 3, 64, 64)] * 2
