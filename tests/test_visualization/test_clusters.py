"""tools/visualize_clusters.py: joint clustering of all images, colour-consistent across images."""
import subprocess
import sys

import numpy as np
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
    assert labels.shape == (4, 4, 4) and 1 <= used <= 4
    assert np.array_equal(labels[0], labels[3])
    summary = visualize_clusters(str(ckpt), paths, str(tmp_path / 'c.png'), num_clusters=4,
                                 size=128)
    assert (tmp_path / 'c.png').stat().st_size > 0 and summary['grid'] == [4, 4]


def test_cli_reports_missing_images_in_one_sentence(tmp_path, repo_root):
    result = subprocess.run([sys.executable, 'tools/visualize_clusters.py', 'x.pth',
                             str(tmp_path / 'none.png')], cwd=repo_root, capture_output=True,
                            text=True)
    assert result.returncode != 0 and 'do not exist' in result.stderr
