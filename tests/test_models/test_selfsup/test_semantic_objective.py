"""The semantic term at the loss level across simulated world sizes (one process per rank).

- At or under the cap the objective and its gradients are exactly the unbounded path's, and
  W ranks give the objective of one process holding the same global batch.
- Above it the scale targets of docs/performance.md hold at a reduced size: from 8 to 128
  simulated ranks the loss moves by less than 0.15, the largest buffer grows by at most 1.5x
  and the work (FLOPs) by at most 4x; without the cap all three fail.
"""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from dsc_mm.models.utils import bounded_pixel_pool

HEADS = {
    'KM': dict(type='KMeansSemanticHead', num_iters=3, min_pixels_per_class=1),
    'PM': dict(type='PrototypeSemanticHead'),
}


def _latent(num, channels, seed=2):
    return F.normalize(torch.randn(num, channels, generator=torch.Generator().manual_seed(seed)),
                       dim=1)


def _rank_blocks(world, local, latent):
    """Rank r's unit key pixels around ``latent`` classes, from seed r (the same at every W)."""
    out = []
    for rank in range(world):
        gen = torch.Generator().manual_seed(100 + rank)
        classes = torch.randint(len(latent), (local, ), generator=gen)
        noise = torch.randn(local, latent.shape[1], generator=gen) / latent.shape[1]**0.5
        out.append(F.normalize(latent[classes] + noise, dim=1))
    return out


def _head(name, classes, channels):
    torch.manual_seed(0)  # same prototypes, same k-means++ seeds
    return MODELS.build(dict(HEADS[name], num_classes=classes, feat_dim=channels))


@pytest.fixture(scope='module')
def ranks(load_script):
    """``ranks(blocks, rank)``: ``pixel_pool`` sees ``len(blocks)`` ranks, this one ``rank``."""
    return load_script('perf/semantic_scale.py').SimulatedRanks


def _rank_loss(ranks, head, blocks, rank, batch, match, query_leaf, cap):
    """Rank ``rank``'s semantic loss; ``query_leaf`` receives its gradient."""
    key_dense = blocks[rank].reshape(batch, -1, blocks[rank].shape[1]).permute(0, 2, 1)
    with ranks(blocks, rank):
        contrast = bounded_pixel_pool(key_dense, match, cap, seed=3)
    torch.manual_seed(0)
    out = head.loss(F.normalize(query_leaf, dim=1), contrast.pixels, contrast.match_rows,
                    torch.tensor(10**6), contrast.cluster_pixels)
    return out['loss']


BATCH, NUM_LOC, CHANNELS, CLASSES = 2, 9, 8, 4
LOCAL = BATCH * NUM_LOC


@pytest.mark.parametrize('head_name', list(HEADS))
@pytest.mark.parametrize('cap', [2 * LOCAL, 2 * LOCAL + 7])
def test_at_or_under_the_cap_w_ranks_give_the_objective_of_one_process(ranks, head_name, cap):
    """Two ranks (each loss a mean over its queries; DDP averages the gradients) against one
    process holding both ranks' images, and against the uncapped path."""
    blocks = _rank_blocks(2, LOCAL, _latent(CLASSES, CHANNELS))
    gen = torch.Generator().manual_seed(7)
    matches = [torch.randint(NUM_LOC, (BATCH, NUM_LOC), generator=gen) for _ in range(2)]
    queries = torch.randn(2 * LOCAL, CHANNELS, generator=gen)

    def two_ranks(cap):
        loss, grads = 0., []
        for rank in range(2):
            leaf = queries[rank * LOCAL:(rank + 1) * LOCAL].clone().requires_grad_()
            head = _head(head_name, CLASSES, CHANNELS)
            rank_loss = _rank_loss(ranks, head, blocks, rank, BATCH, matches[rank], leaf,
                                   cap) / 2
            rank_loss.backward()
            loss, grads = loss + rank_loss.detach(), grads + [leaf.grad]
        return loss, torch.cat(grads)

    bounded, bounded_grad = two_ranks(cap)
    uncapped, uncapped_grad = two_ranks(None)
    assert torch.equal(bounded, uncapped) and torch.equal(bounded_grad, uncapped_grad)

    leaf = queries.clone().requires_grad_()
    head = _head(head_name, CLASSES, CHANNELS)
    single = _rank_loss(ranks, head, [torch.cat(blocks)], 0, 2 * BATCH,
                        torch.cat(matches), leaf, cap)
    single.backward()
    assert torch.allclose(single, bounded, atol=1e-6, rtol=0)
    assert torch.allclose(leaf.grad, bounded_grad, atol=1e-7, rtol=0)


class LargestBuffer(TorchDispatchMode):
    """Bytes of the largest tensor any operation produces (a device-independent memory proxy)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


# Reduced paper sizes: 4 images x 16 locations per rank, C = 16, K = 8, cap = 8 ranks' pool.
SCALE = dict(batch=4, num_loc=16, channels=16, classes=8)


def _scale_row(ranks, head_name, world, cap):
    """(loss, largest buffer bytes, FLOPs) of rank 0's semantic term, forward + backward."""
    batch, num_loc, channels = SCALE['batch'], SCALE['num_loc'], SCALE['channels']
    local = batch * num_loc
    blocks = _rank_blocks(world, local, _latent(64, channels))
    gen = torch.Generator().manual_seed(7)
    match = torch.randint(num_loc, (batch, num_loc), generator=gen)
    rows = (torch.arange(batch)[:, None] * num_loc + match).reshape(-1)
    leaf = (blocks[0][rows] + 0.3 * torch.randn(local, channels, generator=gen)).requires_grad_()
    head = _head(head_name, SCALE['classes'], channels)
    _rank_loss(ranks, head, blocks, 0, batch, match, leaf.detach().clone(), cap)  # warm
    with LargestBuffer() as largest, FlopCounterMode(display=False) as flops:
        loss = _rank_loss(ranks, head, blocks, 0, batch, match, leaf, cap)
        loss.backward()
    return loss.item(), largest.largest, flops.get_total_flops()


@pytest.mark.parametrize('head_name', list(HEADS))
def test_scale_targets_hold_from_8_to_128_ranks_and_fail_without_the_cap(ranks, head_name):
    cap = 8 * SCALE['batch'] * SCALE['num_loc']
    loss8, mem8, flops8 = _scale_row(ranks, head_name, 8, cap)
    loss128, mem128, flops128 = _scale_row(ranks, head_name, 128, cap)
    assert abs(loss128 - loss8) < 0.15, (loss8, loss128)
    assert mem128 <= 1.5 * mem8, (mem8, mem128)
    assert flops128 <= 4 * flops8, (flops8, flops128)
    if head_name == 'KM':  # the contrast set's log-sum-exp grows with log W without the cap
        loss_free, mem_free, flops_free = _scale_row(ranks, head_name, 128, None)
        assert abs(loss_free - loss8) > 0.15, (loss8, loss_free)
    else:  # Sinkhorn codes are per pixel: the loss keeps its scale, the cost does not
        _, mem_free, flops_free = _scale_row(ranks, head_name, 128, None)
    assert mem_free > 1.5 * mem8 and flops_free > 4 * flops8, (mem8, mem_free, flops8, flops_free)
