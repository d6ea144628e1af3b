"""Under CPU bf16 autocast, clustering, Sinkhorn and the log-sum-exps over pools and queues
run in float32: same labels and the same losses as without autocast (Sinkhorn's scores are
checked through the DSC-PM loss: the scores matmul is the op autocast would lower)."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from dsc_mm.models.utils import kmeans, spherical_kmeans


def bf16():
    return torch.autocast('cpu', dtype=torch.bfloat16)


def _pool(num=200, channels=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(5, channels, generator=gen), dim=1)
    classes = torch.randint(5, (num, ), generator=gen)
    return F.normalize(centres[classes] + 0.4 * torch.randn(num, channels, generator=gen), dim=1)


def test_autocast_really_lowers_a_float32_matmul():
    """The premise: .float() inside autocast does not leave it."""
    x = torch.randn(4, 4)
    with bf16():
        assert (x.float() @ x.float()).dtype == torch.bfloat16


def test_kmeans_runs_in_float32_with_the_float32_labels(monkeypatch):
    pool = _pool()
    dtypes = []
    assign = kmeans._assign

    def spy(x, centroids):
        best_sim, labels = assign(x, centroids)
        dtypes.append(best_sim.dtype)
        return best_sim, labels

    monkeypatch.setattr(kmeans, '_assign', spy)
    gen = torch.Generator()
    labels32, centroids32 = spherical_kmeans(pool, 5, generator=gen.manual_seed(0))
    with bf16():
        labels, centroids = spherical_kmeans(pool, 5, generator=gen.manual_seed(0))
    assert set(dtypes) == {torch.float32} and centroids.dtype == torch.float32
    assert torch.equal(labels, labels32) and torch.equal(centroids, centroids32)


HEADS = [
    dict(type='KMeansSemanticHead', num_classes=5, feat_dim=16, num_iters=3),
    dict(type='PrototypeSemanticHead', num_classes=5, feat_dim=16),
]


@pytest.mark.parametrize('cfg', HEADS, ids=['km', 'pm'])
def test_semantic_losses_equal_the_float32_loss_under_autocast(cfg):
    pool = _pool()
    query = F.normalize(pool[:40] + 0.3 * torch.randn(40, 16), dim=1)
    match = torch.arange(40)
    losses = []
    for autocast in (False, True):
        torch.manual_seed(0)
        head = MODELS.build(cfg)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = head.loss(query, pool, match, torch.tensor(0))
        assert out['loss'].dtype == torch.float32
        losses.append(out['loss'])
    assert torch.equal(losses[0], losses[1])


def test_pixel_loss_over_the_queue_equals_the_float32_loss_under_autocast():
    head = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=2))
    gen = torch.Generator().manual_seed(0)
    query, key = (F.normalize(torch.randn(2, 16, 9, generator=gen), dim=1) for _ in range(2))
    queue = F.normalize(torch.randn(16, 256, generator=gen), dim=0)
    index = torch.randint(9, (2, 9, 2), generator=gen)
    expected = head.loss(query, key, index, queue)
    with bf16():
        loss = head.loss(query, key, index, queue)
    assert loss.dtype == torch.float32 and torch.equal(loss, expected)
