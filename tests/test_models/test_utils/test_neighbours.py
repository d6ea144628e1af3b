"""Neighbour discovery picks known neighbours on constructed feature maps."""
import torch
import torch.nn.functional as F

from dsc_mm.models.utils import cross_view_neighbours, same_view_neighbours


def _one_hot_map(num_loc):
    return torch.eye(num_loc).unsqueeze(0)  # (1, D=S*S, S*S): location i is e_i


def test_cross_view_topk_finds_constructed_matches():
    num_loc = 9
    first = torch.tensor([4, 0, 7, 2, 8, 1, 3, 6, 5])  # key j is mostly e_first[j] ...
    second = torch.roll(first, 1)  # ... and a little e_second[j]
    keys = torch.zeros(1, num_loc, num_loc)
    keys[0, first, torch.arange(num_loc)] = 1.0
    keys[0, second, torch.arange(num_loc)] += 0.5
    keys = F.normalize(keys, dim=1)
    idx = cross_view_neighbours(_one_hot_map(num_loc), keys, topk=2)  # (1, 9, 2)
    assert idx.shape == (1, num_loc, 2)
    for i in range(num_loc):
        assert idx[0, i, 0] == (first == i).nonzero().item()  # best: the strong component
        assert idx[0, i, 1] == (second == i).nonzero().item()  # second: the weak one
    # k_x = 1 is DenseCL's argmax.
    top1 = cross_view_neighbours(_one_hot_map(num_loc), keys, topk=1)
    sim = torch.matmul(_one_hot_map(num_loc).permute(0, 2, 1), keys)
    assert torch.equal(top1[..., 0], sim.max(dim=2)[1])


def test_same_view_excludes_self_and_finds_group():
    torch.manual_seed(0)
    # Three groups of three locations sharing a direction; each location has its own jitter.
    groups = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    feats = F.one_hot(groups, 8).float().t() * 3 + 0.1 * torch.randn(8, 9)
    feats = F.normalize(feats, dim=0).unsqueeze(0)  # (1, 8, 9)
    idx = same_view_neighbours(feats, topk=2)
    assert idx.shape == (1, 9, 2)
    for i in range(9):
        assert i not in idx[0, i].tolist()
        assert set(idx[0, i].tolist()) == {j for j in range(9) if groups[j] == groups[i]} - {i}


def test_same_view_excludes_self_even_for_duplicates():
    feats = F.normalize(torch.ones(1, 4, 5), dim=1)  # every location identical
    idx = same_view_neighbours(feats, topk=4)
    for i in range(5):
        assert sorted(idx[0, i].tolist()) == [j for j in range(5) if j != i]
