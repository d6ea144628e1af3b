"""Dense semantic clusters of a pretrained backbone, drawn over images.

All pixels of all images are clustered TOGETHER (spherical k-means on the L2-normalised C5
features), so a colour means the same cluster in every image: what DSC's semantic term is meant to
make consistent across images.
"""
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet statistics on RGB, as in every dsc_mm config.
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)


def load_resnet(path: str, encoder: str = 'query') -> torch.nn.Module:
    """An mmpretrain ResNet holding the backbone of ``path`` (pretraining or converted file)."""
    from mmpretrain.models import ResNet

    from ..transfer.keys import load_backbone
    weights, depth = load_backbone(path, encoder)
    model = ResNet(depth=depth)
    model.load_state_dict(weights, strict=False)  # fc.* is not part of a backbone
    missing = set(model.state_dict()) - set(weights)
    if missing:
        raise ValueError(f'{path} lacks {len(missing)} backbone tensors (e.g. '
                         f'{sorted(missing)[:3]}); pass a pretraining or converted checkpoint.')
    model.eval()  # mmpretrain's ResNet.train() returns None, so no chaining
    return model


def read_images(paths: Sequence[str], size: int) -> np.ndarray:
    """RGB uint8 images resized to ``size`` x ``size``: (N, size, size, 3)."""
    from PIL import Image
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(np.asarray(im.convert('RGB').resize((size, size), Image.BILINEAR)))
    return np.stack(images)


@torch.no_grad()
def dense_clusters(model: torch.nn.Module, images: np.ndarray, num_clusters: int,
                   seed: int = 0) -> Tuple[np.ndarray, int]:
    """Cluster every C5 location of every image jointly.

    Args:
        images: (N, H, W, 3) RGB uint8.

    Returns:
        tuple: labels (N, h, w) int, and the number of non-empty clusters.
    """
    from ..models.utils import spherical_kmeans
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    feats = model((x - MEAN) / STD)[-1]  # (N, C, h, w)
    n, c, h, w = feats.shape
    pool = F.normalize(feats.permute(0, 2, 3, 1).reshape(-1, c), dim=1)  # (N*h*w, C)
    k = min(num_clusters, pool.shape[0])
    generator = torch.Generator().manual_seed(seed)
    labels, _ = spherical_kmeans(pool, k, num_iters=20, generator=generator)
    return labels.view(n, h, w).numpy(), int(labels.unique().numel())


def draw(images: np.ndarray, labels: np.ndarray, path: str, title: str,
         alpha: float = 0.55) -> str:
    """Save a grid: each image above its cluster overlay (same colour = same cluster)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n, size = images.shape[0], images.shape[1]
    palette = (plt.get_cmap('tab20')(np.arange(20))[:, :3] * 255).astype(np.uint8)
    if labels.max() >= 20:  # more clusters than tab20 colours: a fixed random palette
        palette = np.random.default_rng(0).integers(0, 255, (labels.max() + 1, 3), np.uint8)
    up = torch.from_numpy(labels)[:, None].float()
    up = F.interpolate(up, size=(size, size), mode='nearest')[:, 0].long().numpy()
    overlay = (images * (1 - alpha) + palette[up] * alpha).astype(np.uint8)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.8), squeeze=False)
    for i in range(n):
        for row, img in enumerate((images[i], overlay[i])):
            axes[row][i].imshow(img)
            axes[row][i].axis('off')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def visualize_clusters(checkpoint: str, image_paths: List[str], out: str, num_clusters: int = 8,
                       size: int = 224, encoder: str = 'query', seed: int = 0) -> dict:
    """Load, cluster and draw; returns a summary (clusters used, feature grid)."""
    model = load_resnet(checkpoint, encoder)
    images = read_images(image_paths, size)
    labels, used = dense_clusters(model, images, num_clusters, seed)
    draw(images, labels, out, f'{num_clusters} dense clusters over {len(image_paths)} images '
         f'({used} used); same colour = same cluster in every image')
    return dict(out=out, clusters_used=used, grid=list(labels.shape[1:]))
