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


def _sinkhorn_reference(scores, eps, num_iters):
    """SwAV's Sinkhorn-Knopp as written in its paper's pseudo-code (exp domain, float64)."""
    q = torch.exp(scores.double() / eps).t()  # (K, N)
    q /= q.sum()
    num_protos, num_points = q.shape
    for _ in range(num_iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= num_protos
        q /= q.sum(dim=0, keepdim=True)
        q /= num_points
    return (q * num_points).t()  # (N, K), rows sum to 1


def _usage(labels, num_classes):
    """(number of used classes, entropy of the class sizes in nats), counted by hand."""
    sizes = [int((labels == k).sum()) for k in range(num_classes)]
    used = [s / len(labels) for s in sizes if s]
    return len(used), -sum(p * math.log(p) for p in used)


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
    # The statistics are those of the pool's classes after the step: nearest centroid for
    # DSC-KM, argmax of the Sinkhorn codes for DSC-PM.
    if cfg['type'] == 'KMeansSemanticHead':
        labels = (pool @ head.centroids.t()).argmax(dim=1)
    else:
        labels = _sinkhorn_reference(pool @ head.prototypes.detach().t(), 0.05, 3).argmax(dim=1)
    nonempty, entropy = _usage(labels, 4)
    assert out['cluster_nonempty'].item() == nonempty
    assert out['cluster_entropy'].item() == pytest.approx(entropy, abs=1e-6)
    out['loss'].backward()
    assert torch.isfinite(query.grad).all() and query.grad.abs().sum() > 0


def _three_clusters(sizes=(5, 3, 2), channels=8, seed=0):
    """A pool of three tight clusters of the given sizes, its true labels and 4 queries."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.eye(channels)[:3]
    truth = torch.cat([torch.full((n, ), k) for k, n in enumerate(sizes)])
    pool = F.normalize(centres[truth] + 0.05 * torch.randn(len(truth), channels, generator=gen),
                       dim=1)
    query = F.normalize(torch.randn(4, channels, generator=gen), dim=1)
    match = torch.tensor([0, 6, 9, 2])  # matched key pixels in clusters 0, 1, 2, 0
    return query, pool, match, truth


def test_kmeans_loss_value_against_a_by_hand_supervised_contrast():
    query, pool, match, truth = _three_clusters()
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=3, feat_dim=8, num_iters=5,
                             temperature=0.2))
    out = head.loss(query, pool, match, torch.tensor(0))
    # L_i = -1/|P(i)| sum_{p in P(i)} log exp(r_i.t_p/T) / sum_a exp(r_i.t_a/T), one pixel at a
    # time in float64, with P(i) the pixels of the true cluster of i's matched key pixel.
    expected = []
    for i in range(len(query)):
        logits = [float(query[i].double() @ pool[a].double()) / 0.2 for a in range(len(pool))]
        log_denominator = math.log(sum(math.exp(v) for v in logits))
        positives = [a for a in range(len(pool)) if truth[a] == truth[match[i]]]
        expected.append(-sum(logits[p] - log_denominator for p in positives) / len(positives))
    assert out['loss'].item() == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    # Sizes 5, 3, 2 of 10: all three classes used, entropy of (0.5, 0.3, 0.2).
    assert out['cluster_nonempty'].item() == 3
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert out['cluster_entropy'].item() == pytest.approx(entropy, abs=1e-6)


def test_prototype_loss_value_against_swav_sinkhorn_and_swapped_prediction():
    query, pool, match, _ = _three_clusters()
    # Not the defaults (0.05, 3): the head must pass its own eps and rounds to Sinkhorn.
    head = MODELS.build(dict(type='PrototypeSemanticHead', num_classes=3, feat_dim=8,
                             temperature=0.1, sinkhorn_eps=0.1, sinkhorn_iters=4))
    gen = torch.Generator().manual_seed(1)
    prototypes = torch.randn(3, 8, generator=gen) * 2  # not unit: the head renormalises them
    with torch.no_grad():
        head.prototypes.copy_(prototypes)
    out = head.loss(query, pool, match, torch.tensor(0))
    unit = (prototypes / prototypes.norm(dim=1, keepdim=True)).double()
    codes = _sinkhorn_reference(pool.double() @ unit.t(), 0.1, 4)  # (N, K)
    expected = []
    for i in range(len(query)):
        logits = [float(query[i].double() @ unit[k]) / 0.1 for k in range(3)]
        log_z = math.log(sum(math.exp(v) for v in logits))
        expected.append(-sum(float(codes[match[i], k]) * (logits[k] - log_z) for k in range(3)))
    assert out['loss'].item() == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    nonempty, entropy = _usage(codes.argmax(dim=1), 3)
    assert out['cluster_nonempty'].item() == nonempty
    assert out['cluster_entropy'].item() == pytest.approx(entropy, abs=1e-6)


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


def test_defaults_are_the_documented_ones():
    km = MODELS.build(dict(type='KMeansSemanticHead'))
    assert (km.num_classes, km.feat_dim, km.num_iters, km.temperature) == (128, 128, 10, 0.2)
    assert km.centroids.shape == (128, 128)
    assert km.initialized.dtype == torch.bool and not km.initialized
    # 8 pixels per class in a bounded clustering sample: 1,024 of the cap's 12,544 at K = 128.
    assert (km.min_pixels_per_class, km.min_cluster_pixels) == (8, 1024)
    assert MODELS.build(dict(type='KMeansSemanticHead', num_classes=5,
                             min_pixels_per_class=3)).min_cluster_pixels == 15
    pm = MODELS.build(dict(type='PrototypeSemanticHead'))
    assert (pm.num_classes, pm.feat_dim, pm.temperature, pm.sinkhorn_eps, pm.sinkhorn_iters,
            pm.freeze_prototypes_iters, pm.freeze_prototypes_epochs) == \
        (128, 128, 0.1, 0.05, 3, 0, None)
    assert pm.prototypes.shape == (128, 128)
    assert pm.min_cluster_pixels == 0  # no clustering sample: any cap will do
    # The prototypes start as unit rows, like the renormalised ones of every step.
    torch.testing.assert_close(pm.prototypes.detach().norm(dim=1), torch.ones(128))


@pytest.mark.parametrize('type_', ['KMeansSemanticHead', 'PrototypeSemanticHead'])
def test_init_cfg_and_sizes_reach_the_base_head(type_):
    init_cfg = dict(type='Normal', std=0.01)
    head = MODELS.build(dict(type=type_, num_classes=3, feat_dim=5, temperature=0.3,
                             init_cfg=init_cfg))
    assert (head.num_classes, head.feat_dim, head.temperature) == (3, 5, 0.3)
    assert head.init_cfg == init_cfg


def test_kmeans_head_runs_its_lloyd_steps_and_warm_starts_after_loading():
    gen = torch.Generator().manual_seed(0)
    pool = F.normalize(torch.randn(60, 8, generator=gen), dim=1)
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8, num_iters=1))
    from dsc_mm.models.utils import spherical_kmeans
    torch.manual_seed(3)
    labels = head.cluster(pool)
    torch.manual_seed(3)  # the same k-means++ seeds, then exactly one Lloyd step
    ref_labels, ref_centroids = spherical_kmeans(pool, 4, num_iters=1)
    assert torch.equal(labels, ref_labels) and torch.equal(head.centroids, ref_centroids)
    # A head loaded from this state warm-starts from its centroids (no k-means++ re-seeding).
    loaded = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8,
                               num_iters=1))
    loaded.cluster(pool)  # an initialised head of its own, then overwritten by the load
    loaded.load_state_dict(head.state_dict())
    _, warm = spherical_kmeans(pool, 4, num_iters=1, init_centroids=ref_centroids)
    torch.manual_seed(4)
    loaded.cluster(pool)
    assert torch.equal(loaded.centroids, warm)
    fresh = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8,
                              num_iters=1))
    fresh.load_state_dict(head.state_dict())
    fresh.cluster(pool)
    assert torch.equal(fresh.centroids, warm)


def test_prototype_freeze_in_epochs_resolves_to_iterations():
    head = MODELS.build(dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=8,
                             freeze_prototypes_epochs=2.5))
    assert head.freeze_prototypes_epochs == 2.5
    head.resolve_schedules(steps_per_epoch=10)
    assert head.freeze_prototypes_iters == 25
    iters = MODELS.build(dict(type='PrototypeSemanticHead', num_classes=4, feat_dim=8,
                              freeze_prototypes_iters=7))
    iters.resolve_schedules(steps_per_epoch=10)
    assert iters.freeze_prototypes_iters == 7
    with pytest.raises(ValueError, match=r'both freeze_prototypes_iters=3 and '
                                         r'freeze_prototypes_epochs=1.0; give only one'):
        MODELS.build(dict(type='PrototypeSemanticHead', freeze_prototypes_iters=3,
                          freeze_prototypes_epochs=1.0))


def test_cluster_stats_count_only_used_classes():
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=8))
    stats = head.cluster_stats(torch.tensor([0, 0, 2]))
    assert stats['cluster_nonempty'].item() == 2
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert stats['cluster_entropy'].item() == pytest.approx(entropy, abs=1e-6)


def test_kmeans_on_a_shared_sample_labels_the_contrast_set_by_nearest_centroid():
    # Bounded contrast set: k-means runs on cluster_pool; the contrast pixels take the label of
    # their nearest centroid. float64 inputs stay float64.
    from dsc_mm.models.utils import spherical_kmeans
    query, pool, match, _ = _three_clusters()
    query, pool = query.double(), pool.double()
    sample = pool[[0, 1, 2, 5, 6, 8, 9]]
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=3, feat_dim=8, num_iters=2,
                             temperature=0.2))
    torch.manual_seed(0)
    out = head.loss(query, pool, match, torch.tensor(0), cluster_pool=sample)
    torch.manual_seed(0)
    _, centroids = spherical_kmeans(sample, 3, num_iters=2)
    assert torch.equal(head.centroids, centroids)
    labels = (pool.float() @ centroids.t()).argmax(dim=1)
    expected = []
    for i in range(len(query)):
        logits = [float(query[i] @ pool[a]) / 0.2 for a in range(len(pool))]
        log_denominator = math.log(sum(math.exp(v) for v in logits))
        positives = [a for a in range(len(pool)) if labels[a] == labels[match[i]]]
        expected.append(-sum(logits[p] - log_denominator for p in positives) / len(positives))
    assert out['loss'].dtype == torch.float64
    assert out['loss'].item() == pytest.approx(sum(expected) / len(expected), abs=1e-9)
    nonempty, entropy = _usage(labels, 3)
    assert out['cluster_nonempty'].item() == nonempty
    assert out['cluster_entropy'].item() == pytest.approx(entropy, abs=1e-6)
