"""PixelNeighbourHead: the multi-positive InfoNCE and its neighbour switches."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from dsc_mm.models.heads import multi_positive_info_nce


def _contrastive_head_loss(pos, neg, temperature):
    head = MODELS.build(dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
                             temperature=temperature))
    return head.loss(pos.clone(), neg.clone())


def test_one_positive_is_mmpretrain_contrastive_head():
    torch.manual_seed(0)
    pos, neg = torch.rand(10, 1) * 2 - 1, torch.rand(10, 30) * 2 - 1
    ours = multi_positive_info_nce(pos, neg, 0.2)
    assert torch.allclose(ours, _contrastive_head_loss(pos, neg, 0.2), atol=1e-6)


def test_several_positives_average_one_info_nce_each():
    torch.manual_seed(0)
    pos, neg = torch.rand(6, 3) * 2 - 1, torch.rand(6, 20) * 2 - 1
    expected = torch.stack([_contrastive_head_loss(pos[:, p:p + 1], neg, 0.2)
                            for p in range(3)]).mean()
    assert torch.allclose(multi_positive_info_nce(pos, neg, 0.2), expected, atol=1e-6)


def _maps(batch=2, channels=8, num_loc=9, seed=0):
    torch.manual_seed(seed)
    return [F.normalize(torch.randn(batch, channels, num_loc), dim=1) for _ in range(2)]


def test_loss_uses_the_neighbours_as_positives():
    head = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=2, same_view_topk=1))
    query, key = _maps()
    key1 = F.normalize(torch.randn(2, 8, 9), dim=1)
    queue = F.normalize(torch.randn(8, 16), dim=0)
    cross, same = head.find_neighbours(*_maps(channels=32, seed=1), key1_feats=key1)
    assert cross.shape == (2, 9, 2) and same.shape == (2, 9, 1)
    query.requires_grad_(True)
    loss = head.loss(query, key, cross, queue, key1, same)
    # Same loss from explicitly gathered positives.
    pos = torch.stack([
        torch.stack([(query[b, :, i] * key[b, :, cross[b, i, 0]]).sum(),
                     (query[b, :, i] * key[b, :, cross[b, i, 1]]).sum(),
                     (query[b, :, i] * key1[b, :, same[b, i, 0]]).sum()]) for b in range(2)
        for i in range(9)
    ])
    neg = query.permute(0, 2, 1).reshape(-1, 8) @ queue
    assert torch.allclose(loss, multi_positive_info_nce(pos, neg, 0.2), atol=1e-6)
    loss.backward()
    assert torch.isfinite(query.grad).all() and query.grad.abs().sum() > 0


def test_same_view_off_needs_no_view1_keys():
    head = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=1, same_view_topk=0))
    assert not head.uses_same_view
    cross, same = head.find_neighbours(*_maps())
    assert same is None and cross.shape == (2, 9, 1)


def test_too_many_neighbours_for_the_map_is_one_clear_error():
    head = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=10))
    with pytest.raises(ValueError, match='locations'):
        head.find_neighbours(*_maps())
