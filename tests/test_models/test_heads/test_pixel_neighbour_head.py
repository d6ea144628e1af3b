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
    # 32 channels and 9 locations: the locations are the last dimension.
    maps = _maps(channels=32)
    head = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=10))
    with pytest.raises(ValueError, match=r'^The feature map has only 9 locations, fewer than '
                                         r'cross_view_topk=10 \(or <= same_view_topk=0\)'):
        head.find_neighbours(*maps)
    # All 9 cross-view locations are allowed; 9 same-view ones are not (a location is not
    # its own neighbour, so only 8 remain).
    cross, _ = MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=9)).find_neighbours(
        *maps)
    assert torch.equal(cross.sort(dim=2).values, torch.arange(9).expand(2, 9, 9))
    head = MODELS.build(dict(type='PixelNeighbourHead', same_view_topk=9))
    with pytest.raises(ValueError, match='same_view_topk=9'):
        head.find_neighbours(*maps, key1_feats=maps[0])
    _, same = MODELS.build(dict(type='PixelNeighbourHead', same_view_topk=8)).find_neighbours(
        *maps, key1_feats=maps[0])
    assert same.shape == (2, 9, 8)


@pytest.mark.parametrize('cross, same', [(0, 0), (1, -1), (0, 1)])
def test_neighbour_counts_are_checked_at_construction(cross, same):
    with pytest.raises(ValueError, match=f'^PixelNeighbourHead needs cross_view_topk >= 1 and '
                                         f'same_view_topk >= 0, got {cross} and {same}; fix '
                                         f'pixel_head in the model config.$'):
        MODELS.build(dict(type='PixelNeighbourHead', cross_view_topk=cross,
                          same_view_topk=same))


def test_defaults_are_densecls_single_match():
    head = MODELS.build(dict(type='PixelNeighbourHead', init_cfg=dict(type='Normal')))
    assert (head.cross_view_topk, head.same_view_topk, head.temperature) == (1, 0, 0.2)
    assert head.init_cfg == dict(type='Normal')


def test_loss_without_same_view_is_densecls_dense_loss_in_float32_for_half_inputs():
    head = MODELS.build(dict(type='PixelNeighbourHead', temperature=0.3))
    query, key = _maps()
    queue = F.normalize(torch.randn(8, 16), dim=0)
    cross, _ = head.find_neighbours(*_maps(channels=32, seed=1))
    loss = head.loss(query.half(), key.half(), cross, queue.half())
    assert loss.dtype == torch.float32
    q, k = query.half().float(), key.half().float()
    pos = torch.stack([(q[b, :, i] * k[b, :, cross[b, i, 0]]).sum() for b in range(2)
                       for i in range(9)])[:, None]
    neg = q.permute(0, 2, 1).reshape(-1, 8) @ queue.half().float()
    torch.testing.assert_close(loss, _contrastive_head_loss(pos, neg, 0.3), rtol=0, atol=1e-5)
