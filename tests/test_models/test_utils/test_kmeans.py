"""Spherical k-means and k-means++ seeding (DSC-KM's class discovery)."""
import math

import pytest
import torch
import torch.nn.functional as F

from dsc_mm.models.utils.kmeans import kmeans_plus_plus, spherical_kmeans


def _clusters(num_clusters=8, per_cluster=40, channels=32, noise=0.02, seed=0):
    """Unit points around mutually orthogonal centres (cosine to own centre ~0.99, to others ~0)."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen))
    centres = basis[:num_clusters]  # (K, C), orthonormal rows
    truth = torch.arange(num_clusters * per_cluster) % num_clusters
    x = F.normalize(centres[truth] + noise * torch.randn(truth.numel(), channels, generator=gen),
                    dim=1)
    return x, truth, centres


def _purity(labels, truth, num_clusters):
    """Fraction of points whose found cluster's majority true class is their own class."""
    majority = sum(int(torch.bincount(truth[labels == k], minlength=num_clusters).max())
                   for k in range(num_clusters) if (labels == k).any())
    return majority / truth.numel()


@pytest.mark.parametrize('seed', range(5))
def test_recovers_separated_clusters(seed):
    x, truth, centres = _clusters(seed=seed)
    labels, centroids = spherical_kmeans(x, 8, generator=torch.Generator().manual_seed(seed))
    assert labels.shape == (320, ) and labels.dtype == torch.long
    assert centroids.shape == (8, 32)
    assert _purity(labels, truth, 8) == 1.0
    assert torch.bincount(labels, minlength=8).tolist() == [40] * 8
    # Each centroid sits on one true centre (cosine close to the points' 0.99).
    assert (centroids @ centres.t()).max(dim=1).values.min() > 0.99


def test_centroids_are_normalised_means_of_their_labels():
    gen = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(500, 16, generator=gen), dim=1)
    labels, centroids = spherical_kmeans(x, 12, num_iters=3, generator=gen)
    means = torch.stack([x[labels == k].mean(dim=0) for k in range(12)])
    torch.testing.assert_close(centroids, F.normalize(means, dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(12))


def test_reseeds_a_warm_start_centroid_that_gets_no_points():
    x, _, centres = _clusters(num_clusters=4, per_cluster=30, channels=16)
    # Three centroids on data clusters and one pointing away from all the data (cosine about
    # -0.5 to every point, below the ~0 that the fourth cluster has to the other centroids).
    init = torch.cat([centres[:3], -F.normalize(centres.sum(dim=0, keepdim=True), dim=1)])
    assert torch.bincount((x @ init.t()).argmax(dim=1), minlength=4)[3] == 0
    labels, centroids = spherical_kmeans(x, 4, num_iters=1, init_centroids=init)
    assert (torch.bincount(labels, minlength=4) > 0).all()
    # After a few more steps the re-seeded cluster has taken the uncovered data cluster.
    labels, _ = spherical_kmeans(x, 4, num_iters=5, init_centroids=init)
    assert torch.bincount(labels, minlength=4).tolist() == [30] * 4


def test_reseeding_fills_all_clusters_when_n_equals_k():
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(16, 8, generator=gen), dim=1)
    # All 16 centroids identical: every point lands in cluster 0 and 15 clusters are empty;
    # re-seeding must never empty cluster 0 again, so each cluster ends with exactly one point.
    init = x[:1].expand(16, 8)
    labels, centroids = spherical_kmeans(x, 16, num_iters=1, init_centroids=init)
    assert sorted(labels.tolist()) == list(range(16))
    torch.testing.assert_close(centroids[labels], x)


def test_reseeding_never_empties_a_singleton_cluster():
    e = torch.eye(4)
    # Cluster 0 holds one point p with the lowest similarity of all (0.29): the farthest point
    # overall, yet taking it for an empty cluster would empty cluster 0. Cluster 1 holds three
    # points; clusters 2 and 3 point away from everything and start empty.
    p = F.normalize(0.3 * e[0] + e[2], dim=0)
    q = F.normalize(e[1] + torch.tensor([[0.2], [0.8], [1.5]]) * e[3], dim=1)
    x = torch.cat([p[None], q])
    away = F.normalize(-e[0] - e[1], dim=0)
    init = torch.stack([e[0], e[1], away, away])
    assert torch.bincount((x @ init.t()).argmax(dim=1), minlength=4).tolist() == [1, 3, 0, 0]
    labels, _ = spherical_kmeans(x, 4, num_iters=1, init_centroids=init)
    assert labels[0] == 0
    assert sorted(labels.tolist()) == [0, 1, 2, 3]


def test_warm_start_keeps_labels_stable():
    x, _, _ = _clusters(num_clusters=16, per_cluster=25, channels=32, noise=0.05, seed=3)
    labels, centroids = spherical_kmeans(x, 16, generator=torch.Generator().manual_seed(3))
    labels2, centroids2 = spherical_kmeans(x, 16, init_centroids=centroids)
    assert torch.equal(labels2, labels)
    assert (centroids2 - centroids).abs().max() < 1e-5


def test_kmeans_plus_plus_picks_distinct_points():
    gen = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(64, 8, generator=gen), dim=1)
    seeds = kmeans_plus_plus(x, 64, generator=gen)
    # Asking for every point must return each row exactly once.
    assert torch.equal(seeds[torch.argsort(seeds[:, 0])], x[torch.argsort(x[:, 0])])
    # With duplicated vectors (4 distinct, 8 copies each), all weights reach 0 after 4 seeds;
    # the remaining picks must still be distinct indices, i.e. each vector 8 times.
    dup = x[:4].repeat(8, 1)
    seeds = kmeans_plus_plus(dup, 32, generator=gen)
    counts = (seeds @ x[:4].t()).argmax(dim=1).bincount(minlength=4)
    assert counts.tolist() == [8, 8, 8, 8]


def test_kmeans_plus_plus_seeds_every_separated_cluster():
    # Spread clusters (cosine ~0.96 to the centre) where plain D^2 sampling often puts two
    # seeds in one cluster (measured: all 8 covered for only 5 of these 20 seeds); the greedy
    # best-of-(2 + log K) choice must cover every cluster for at least 18 of them (20 measured).
    x, _, centres = _clusters(num_clusters=8, per_cluster=40, noise=0.05)
    covered = 0
    for seed in range(20):
        seeds = kmeans_plus_plus(x, 8, generator=torch.Generator().manual_seed(seed))
        covered += sorted((seeds @ centres.t()).argmax(dim=1).tolist()) == list(range(8))
    assert covered >= 18


def test_deterministic_given_generator():
    x = F.normalize(torch.randn(2000, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    runs = [spherical_kmeans(x, 32, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])
    other = kmeans_plus_plus(x, 32, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other, kmeans_plus_plus(x, 32, torch.Generator().manual_seed(7)))


def test_accepts_half_and_unnormalised_rows():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0)) * 3
    ref_labels, ref_centroids = spherical_kmeans(
        F.normalize(x.half().float(), dim=1), 6, generator=torch.Generator().manual_seed(0))
    labels, centroids = spherical_kmeans(x.half(), 6, generator=torch.Generator().manual_seed(0))
    assert centroids.dtype == torch.float32
    assert torch.equal(labels, ref_labels)
    torch.testing.assert_close(centroids, ref_centroids)


def test_errors_name_the_problem():
    x = F.normalize(torch.randn(10, 4), dim=1)
    with pytest.raises(ValueError, match='num_clusters=16 non-empty clusters from a pool of N=10'):
        spherical_kmeans(x, 16)
    with pytest.raises(ValueError, match=r'init_centroids has shape \(3, 4\)'):
        spherical_kmeans(x, 4, init_centroids=torch.randn(3, 4))
    with pytest.raises(ValueError, match=r'shape \(N, C\)'):
        kmeans_plus_plus(x[None], 4)


def test_one_cluster_and_the_default_number_of_lloyd_steps(monkeypatch):
    from dsc_mm.models.utils import kmeans
    x = F.normalize(torch.randn(30, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    labels, centroids = spherical_kmeans(x, 1)
    assert labels.tolist() == [0] * 30
    torch.testing.assert_close(centroids[0], F.normalize(x.mean(dim=0), dim=0))
    with pytest.raises(ValueError, match='num_clusters=0 non-empty'):
        spherical_kmeans(x, 0)
    with pytest.raises(ValueError, match='^spherical k-means needs num_iters >= 1 Lloyd steps '
                                         'to produce labels, got 0.$'):
        spherical_kmeans(x, 2, num_iters=0)
    calls = []
    assign = kmeans._assign
    monkeypatch.setattr(kmeans, '_assign', lambda *a: calls.append(1) or assign(*a))
    spherical_kmeans(x, 3)
    assert len(calls) == 10  # one assignment per Lloyd step, 10 by default


def test_singleton_centroids_are_their_point_and_a_float64_warm_start_is_accepted():
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(6, 8, generator=gen), dim=1)
    labels, centroids = spherical_kmeans(x, 6, num_iters=2, init_centroids=x.double())
    assert labels.tolist() == list(range(6))
    # A one-point cluster's centroid is the point itself (its norm is 1, nothing to clamp).
    torch.testing.assert_close(centroids, x, rtol=0, atol=2e-7)


def _reference_kmeans_plus_plus(x, num_clusters, gen):
    """Greedy k-means++ as scikit-learn's _kmeans_plusplus, on cosine distance, one seed at a
    time in plain Python; the same draws from ``gen`` as the implementation."""
    num_points = len(x)
    trials = 2 + int(math.log(num_clusters))
    first = int(torch.randint(num_points, (1, ), generator=gen))
    seeds = [first]
    min_dist = (1 - x @ x[first]).clamp_min(0)
    for _ in range(1, num_clusters):
        weights = min_dist.clone()
        weights[seeds] = 0
        if weights.sum() <= 0:
            weights = torch.ones(num_points)
            weights[seeds] = 0
        cand = torch.multinomial(weights, trials, replacement=True, generator=gen)
        dists = [torch.minimum((1 - x @ x[c]).clamp_min(0), min_dist) for c in cand]
        best = min(range(trials), key=lambda j: (float(dists[j].sum()), j))
        seeds.append(int(cand[best]))
        min_dist = dists[best]
    return seeds


@pytest.mark.parametrize('noise', [0.3, 0.001])
def test_kmeans_plus_plus_draws_the_reference_seeds(noise):
    # noise 0.001: after the first 4 seeds the remaining distances sum to less than 1, where
    # the D^2 weights must still be used (not the uniform fallback).
    x, _, _ = _clusters(num_clusters=4, per_cluster=10, channels=8, noise=noise)
    seeds = kmeans_plus_plus(x, 8, generator=torch.Generator().manual_seed(5))
    expected = _reference_kmeans_plus_plus(x, 8, torch.Generator().manual_seed(5))
    assert torch.equal(seeds, x[expected])
