"""tools/visualize_clusters.py: joint clustering of all images, colour-consistent across images."""
import numpy as np
import pytest
import torch
from PIL import Image

from dsc_mm.visualization.clusters import dense_clusters, load_resnet, visualize_clusters


def _pretraining_checkpoint(path):
    from mmpretrain.models import ResNet
    torch.manual_seed(0)
    backbone = ResNet(depth=18)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in backbone.state_dict().items()}},
               path)
    return backbone


def test_same_image_gets_same_clusters_and_png_is_written(tmp_path):
    ckpt = tmp_path / 'pretrain.pth'
    _pretraining_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f'{i}.png'
        Image.fromarray(rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    paths.append(paths[0])  # the same image twice: its clusters must coincide
    model = load_resnet(str(ckpt))
    from dsc_mm.visualization.clusters import read_images
    images = read_images(paths, 128)
    labels, used = dense_clusters(model, images, num_clusters=4)
    # The count is that of the labels that occur; on this seeded input all 4 clusters do,
    # and 2 clusters split the 64 locations in two (a count that ignored k would not).
    assert labels.shape == (4, 4, 4) and used == np.unique(labels).size == 4
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    two, used_two = dense_clusters(model, images, num_clusters=2)
    assert used_two == 2 and set(np.unique(two)) == {0, 1}
    assert np.array_equal(labels[0], labels[3])
    summary = visualize_clusters(str(ckpt), paths, str(tmp_path / 'c.png'), num_clusters=4,
                                 size=128)
    assert (tmp_path / 'c.png').stat().st_size > 0 and summary['grid'] == [4, 4]


def test_used_counts_the_clusters_that_occur(monkeypatch):
    # spherical_kmeans leaves no cluster empty, so on real features used == k; the count itself
    # is checked with a clustering that leaves clusters 1 and 3 of 4 empty.
    import dsc_mm.models.utils as model_utils
    from mmpretrain.models import ResNet
    torch.manual_seed(0)
    model = ResNet(depth=18)
    model.eval()  # mmpretrain's ResNet.train() returns None, so no chaining
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)

    def two_of_four(pool, k, num_iters, generator):
        assert k == 4 and pool.shape == (2 * 2 * 2, 512)
        return torch.tensor([0, 2] * 4), torch.zeros(k, pool.shape[1])
    monkeypatch.setattr(model_utils, 'spherical_kmeans', two_of_four)
    labels, used = dense_clusters(model, images, num_clusters=4)
    assert used == 2 and labels.shape == (2, 2, 2)


def test_cli_reports_missing_images_in_one_sentence(tmp_path, load_script):
    missing = tmp_path / 'none.png'
    with pytest.raises(SystemExit) as stop:  # in process: the sentence the tool exits with
        load_script('tools/visualize_clusters.py').main(['x.pth', str(missing)])
    assert str(stop.value.code) == f'error: 1 image file(s) do not exist, e.g. {missing}.'
