"""Sinkhorn-Knopp equipartition (DSC-PM targets)."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.losses.swav_loss import distributed_sinkhorn

from dsc_mm.models.utils.sinkhorn import sinkhorn_knopp


def _cosine_scores(num_points=2048, num_protos=32, channels=128, num_classes=16, seed=0):
    """Cosine scores of a clustered pixel pool (16 classes, uneven sizes) against prototypes."""
    gen = torch.Generator().manual_seed(seed)
    classes = F.normalize(torch.randn(num_classes, channels, generator=gen), dim=1)
    # Uneven class sizes: the pool is far from equipartitioned before Sinkhorn.
    weights = torch.linspace(1, 8, num_classes)
    truth = torch.multinomial(weights, num_points, replacement=True, generator=gen)
    x = F.normalize(classes[truth] + 0.1 * torch.randn(num_points, channels, generator=gen), dim=1)
    protos = F.normalize(torch.randn(num_protos, channels, generator=gen), dim=1)
    return x @ protos.t()  # (N, K)


def test_rows_sum_to_one_and_columns_are_equipartitioned():
    scores = _cosine_scores()
    num_points, num_protos = scores.shape
    plain = F.softmax(scores / 0.05, dim=1).sum(dim=0) / (num_points / num_protos)
    assert plain.max() > 2 * plain.min()  # the argmax/softmax assignment is unbalanced
    q = sinkhorn_knopp(scores)  # SwAV's eps=0.05, 3 iterations
    assert q.shape == scores.shape and q.dtype == torch.float32
    torch.testing.assert_close(q.sum(dim=1), torch.ones(num_points), atol=1e-5, rtol=0)
    # Tolerance for 3 iterations: every column within 5% of N/K (measured: 1.3%).
    columns = q.sum(dim=0) / (num_points / num_protos)
    assert (columns - 1).abs().max() < 0.05
    # More iterations converge to the exact equipartition.
    columns = sinkhorn_knopp(scores, num_iters=50).sum(dim=0) / (num_points / num_protos)
    assert (columns - 1).abs().max() < 1e-3


def test_matches_mmpretrain_swav_sinkhorn_on_ordinary_scores():
    # The log-domain version computes the same Q as SwAV's (mmpretrain's) exp-domain one.
    scores = _cosine_scores(num_points=512, num_protos=32)
    expected = distributed_sinkhorn(scores.clone(), 3, world_size=1, epsilon=0.05)
    before = scores.clone()
    torch.testing.assert_close(sinkhorn_knopp(scores, eps=0.05, num_iters=3), expected,
                               atol=1e-5, rtol=1e-4)
    assert torch.equal(scores, before)  # the caller's scores are left untouched


def test_stable_for_large_scores_and_small_eps():
    scores = _cosine_scores(num_points=1024, num_protos=32) * 100
    # The exp-domain reference overflows here (exp(100 / 0.01)); the log domain must not.
    assert not distributed_sinkhorn(scores.clone(), 3, 1, 0.01).isfinite().all()
    q = sinkhorn_knopp(scores, eps=0.01, num_iters=3)
    assert q.isfinite().all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(1024), atol=1e-5, rtol=0)
    # Tiny eps (|scores| / eps ~ 1e6): still finite, normalised rows, no negative mass.
    q = sinkhorn_knopp(scores / 100, eps=1e-6)
    assert q.isfinite().all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(1024), atol=1e-5, rtol=0)


def test_permutation_like_assignment():
    num = 16
    perm = torch.randperm(num, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(num)
    clean = torch.zeros(num, num)
    clean[rows, perm] = 1
    q = sinkhorn_knopp(clean)
    assert torch.equal(q.argmax(dim=1), perm)
    assert q[rows, perm].min() > 0.99
    # Every pixel prefers prototype 0 (0.9) over its own (0.8): argmax collapses onto one
    # prototype, equipartition must still give each pixel its own prototype.
    collapsed = torch.zeros(num, num)
    collapsed[rows, perm] = 0.8
    collapsed[:, 0] = 0.9
    assert (collapsed.argmax(dim=1) == 0).all()
    q = sinkhorn_knopp(collapsed)
    assert torch.equal(q.argmax(dim=1), perm)
    assert q[rows, perm].min() > 0.95


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'shape \(N, K\)'):
        sinkhorn_knopp(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='eps > 0'):
        sinkhorn_knopp(torch.zeros(4, 2), eps=0)
    with pytest.raises(ValueError, match='num_iters >= 1'):
        sinkhorn_knopp(torch.zeros(4, 2), num_iters=0)


def test_defaults_are_swavs_and_one_round_is_allowed():
    scores = _cosine_scores(num_points=256, num_protos=8)
    assert torch.equal(sinkhorn_knopp(scores), sinkhorn_knopp(scores, eps=0.05, num_iters=3))
    assert not torch.equal(sinkhorn_knopp(scores), sinkhorn_knopp(scores, num_iters=4))
    assert not torch.equal(sinkhorn_knopp(scores), sinkhorn_knopp(scores, eps=0.1))
    # One round: columns scaled, then rows, so the rows are exact distributions.
    q = sinkhorn_knopp(scores, num_iters=1)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(256), atol=1e-5, rtol=0)
