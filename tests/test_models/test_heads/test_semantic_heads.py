"""DSC-KM and DSC-PM heads: contract, labels, and where gradients flow."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from dsc_mm.models.heads import BaseSemanticHead


def _pool_and_queries(num_pool=64, num_query=16, channels=8, seed=0):
    torch.manual_seed(seed)
    pool = F.normalize(torch.randn(num_pool, channels), dim=1)
    query = F.normalize(torch.randn(num_query, channels), dim=1).requires_grad_(True)
    match = torch.randint(0, num_pool, (num_query, ))
    return query, pool, match


@pytest.mark.parametrize('cfg', [
    dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8),
    dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=8),
])
def test_contract_shapes_finite_and_query_gradient(cfg):
    head = MODELS.build(cfg)
    assert isinstance(head, BaseSemanticHead)
    query, pool, match = _pool_and_queries()
    out = head.loss(query, pool, match, torch.tensor(0))
    assert set(out) == {'loss', 'cluster_nonempty', 'cluster_entropy'}
    assert out['loss'].dim() == 0 and torch.isfinite(out['loss'])
    assert 1 <= out['cluster_nonempty'].item() <= 4
    assert 0 <= out['cluster_entropy'].item() <= math.log(4) + 1e-6
    out['loss'].backward()
    assert torch.isfinite(query.grad).all() and query.grad.abs().sum() > 0


def test_kmeans_query_pixels_take_the_label_of_their_matched_key_pixel():
    # Two tight, opposite clusters: k-means (K=2) must split them, and the supervised contrast
    # then has, for each query, exactly the pixels of its matched key pixel's cluster as
    # positives.
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(2, 8), dim=1)
    centres[1] = -centres[0]
    side = torch.tensor([0] * 10 + [1] * 10)
    pool = F.normalize(centres[side] + 0.05 * torch.randn(20, 8), dim=1)
    match = torch.tensor([0, 3, 12, 19, 5])
    query = F.normalize(torch.randn(5, 8), dim=1)
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=2, feat_dim=8, num_iters=5,
                             temperature=0.2))
    loss = head.loss(query, pool, match, torch.tensor(0))['loss']
    log_prob = F.log_softmax(query @ pool.t() / 0.2, dim=1)
    positive = side[match][:, None] == side[None, :]
    expected = -(log_prob * positive).sum(1) / positive.sum(1)
    assert torch.allclose(loss, expected.mean(), atol=1e-6)
    assert torch.equal(head.cluster(pool).unique(return_counts=True)[1], torch.tensor([10, 10]))


def test_kmeans_warm_starts_from_its_centroids_buffer():
    query, pool, match = _pool_and_queries(num_pool=200)
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8, num_iters=2))
    assert not head.initialized
    head.loss(query, pool, match, torch.tensor(0))
    first = head.centroids.clone()
    assert head.initialized and torch.allclose(first.norm(dim=1), torch.ones(4))
    # Without k-means++ re-seeding, more Lloyd steps from the stored centroids cannot move a
    # converged clustering: a second call on the same pool keeps the centroids.
    for _ in range(5):
        head.cluster(pool)
    settled = head.centroids.clone()
    head.cluster(pool)
    assert torch.allclose(head.centroids, settled, atol=1e-6)


def test_prototypes_frozen_then_trained():
    head = MODELS.build(dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=8,
                             freeze_prototypes_iters=3))
    for it, expect_grad in [(0, False), (2, False), (3, True)]:
        head.zero_grad()
        query, pool, match = _pool_and_queries(seed=it)
        head.loss(query, pool, match, torch.tensor(it))['loss'].backward()
        grad = head.prototypes.grad
        assert (grad is not None and grad.abs().sum() > 0) == expect_grad, it
        assert query.grad.abs().sum() > 0  # the features always learn


def test_prototypes_are_renormalised_every_step():
    head = MODELS.build(dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=8))
    with torch.no_grad():
        head.prototypes.mul_(3.0)
    query, pool, match = _pool_and_queries()
    head.loss(query, pool, match, torch.tensor(0))
    assert torch.allclose(head.prototypes.norm(dim=1), torch.ones(4), atol=1e-6)
