"""bounded_pixel_pool at simulated world sizes: one process stands for one rank.

``all_gather``, ``get_rank`` and ``get_world_size`` as seen by ``pixel_pool`` are replaced by
functions over pre-built per-rank key pixels (what the collective would return there); the
real two-process (gloo) run is in tests/test_models/test_selfsup/test_dsc_dist.py.
"""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from dsc_mm.models.utils import bounded_pixel_pool, pixel_pool

BATCH, NUM_LOC, CHANNELS = 2, 9, 8
LOCAL = BATCH * NUM_LOC
SEED = 5


def _blocks(world, seed=0, latent=None, local=LOCAL, channels=CHANNELS):
    """Per-rank unit key pixels (L, C), optionally around ``latent`` class centres."""
    gen = torch.Generator().manual_seed(seed)
    if latent is None:
        return [F.normalize(torch.randn(local, channels, generator=gen), dim=1)
                for _ in range(world)]
    out = []
    for _ in range(world):
        classes = torch.randint(len(latent), (local, ), generator=gen)
        out.append(F.normalize(latent[classes] + 0.3 * torch.randn(local, channels,
                                                                    generator=gen), dim=1))
    return out


@pytest.fixture(scope='module')
def ranks(load_script):
    """``ranks(blocks, rank)``: ``pixel_pool`` sees ``len(blocks)`` ranks, this one ``rank``."""
    return load_script('perf/semantic_scale.py').SimulatedRanks


def _key_dense(block, batch=BATCH):
    return block.reshape(batch, -1, block.shape[1]).permute(0, 2, 1)  # (B, C, S*S)


MATCH = torch.randint(NUM_LOC, (BATCH, NUM_LOC), generator=torch.Generator().manual_seed(1))


def _rows_of(pixels, block):
    """For each row of ``pixels``, the row of ``block`` equal to it (-1: none). # (N, )"""
    hits = (pixels[:, None] == block[None]).all(-1)  # (N, L)
    return torch.where(hits.any(1), hits.float().argmax(1), -1)


@pytest.mark.parametrize('cap', [None, 4 * LOCAL, 4 * LOCAL + 5])
def test_at_or_under_the_cap_the_set_is_the_global_pool(ranks, cap):
    blocks = _blocks(4)
    with ranks(blocks, rank=1):
        contrast = bounded_pixel_pool(_key_dense(blocks[1]), MATCH, cap, seed=SEED)
    assert contrast.cluster_pixels is None
    assert torch.equal(contrast.pixels, torch.cat(blocks))
    local_rows = (torch.arange(BATCH)[:, None] * NUM_LOC + MATCH).reshape(-1)
    assert torch.equal(contrast.match_rows, LOCAL + local_rows)


@pytest.mark.parametrize('world,cap', [(8, 3 * LOCAL), (3, 2 * LOCAL + 1), (2, LOCAL),
                                       (5, LOCAL - 4)])
def test_above_the_cap_the_set_is_exactly_the_cap_and_the_sample_comes_from_every_rank(
        ranks, world, cap):
    blocks = _blocks(world)
    from_other = max(0, cap - LOCAL)
    share = -(-cap // world)  # clustering rows per rank, ceil(cap / W)
    samples = []
    for rank in range(world):
        with ranks(blocks, rank):
            contrast = bounded_pixel_pool(_key_dense(blocks[rank]), MATCH, cap, seed=SEED)
        pixels = contrast.pixels
        assert pixels.shape == (LOCAL + from_other, CHANNELS)
        # The own pixels come first, in full, and every query's matched key pixel is among them.
        assert torch.equal(pixels[:LOCAL], blocks[rank])
        local_rows = (torch.arange(BATCH)[:, None] * NUM_LOC + MATCH).reshape(-1)
        assert torch.equal(pixels[contrast.match_rows], blocks[rank][local_rows])
        # The rest: distinct pixels of the OTHER ranks, q or q + 1 of each.
        counts = []
        for other in range(world):
            rows = _rows_of(pixels[LOCAL:], blocks[other])
            taken = rows[rows >= 0]
            assert len(taken.unique()) == len(taken)
            counts.append(len(taken))
        assert counts[rank] == 0 and sum(counts) == from_other
        others = [c for r, c in enumerate(counts) if r != rank]
        assert max(others) - min(others) <= 1
        # ... in ring order after this rank (rank + 1, rank + 2, ... mod W), the first
        # (cap - L) mod (W - 1) of them giving the one row more.
        owner = torch.full((from_other, ), -1)
        for other in range(world):
            owner[_rows_of(pixels[LOCAL:], blocks[other]) >= 0] = other
        ring = ((owner - rank) % world).tolist()
        assert ring == sorted(ring)
        extra = from_other % (world - 1)
        assert [ring.count(i) for i in range(1, world)] == \
            [from_other // (world - 1) + (i <= extra) for i in range(1, world)]
        # The clustering sample: ceil(cap / W) distinct pixels of EVERY rank, its own included.
        sample = contrast.cluster_pixels
        assert sample.shape == (world * share, CHANNELS)
        for r in range(world):
            rows = _rows_of(sample[r * share:(r + 1) * share], blocks[r])
            assert (rows >= 0).all() and len(rows.unique()) == share
        samples.append(sample)
    assert all(torch.equal(s, samples[0]) for s in samples)  # one shared clustering sample


def test_each_rank_draws_its_own_rows_in_order_of_its_local_pixels():
    picks = pixel_pool.sample_rows(50, 20, SEED, 3, 'cpu')
    assert picks.shape == (20, ) and len(picks.unique()) == 20 and picks.max() < 50
    assert torch.equal(picks, pixel_pool.sample_rows(50, 20, SEED, 3, 'cpu'))
    assert not torch.equal(picks, pixel_pool.sample_rows(50, 20, SEED + 1, 3, 'cpu'))
    assert not torch.equal(picks, pixel_pool.sample_rows(50, 20, SEED, 4, 'cpu'))


def test_own_pixels_at_the_cap_still_give_k_means_a_sample_of_the_cap(ranks):
    """Issue 19's reproduction: W = 2, L = cap = 18, K = 4 used to cluster W = 2 pixels."""
    blocks = _blocks(2)
    with ranks(blocks):
        contrast = bounded_pixel_pool(_key_dense(blocks[0]), MATCH, LOCAL, seed=SEED)
    assert contrast.cluster_pixels.shape == (LOCAL, CHANNELS)
    assert torch.equal(contrast.pixels, blocks[0])
    head = MODELS.build(dict(type='KMeansSemanticHead', num_classes=4, feat_dim=CHANNELS,
                             num_iters=3))
    out = head.loss(blocks[0], contrast.pixels, contrast.match_rows, torch.tensor(0),
                    contrast.cluster_pixels)
    assert torch.isfinite(out['loss'])


def test_dsc_refuses_a_cap_below_what_k_means_needs(tiny):
    with pytest.raises(ValueError, match='max_contrast_pixels=100 is below the 128 pixels'):
        MODELS.build(tiny.dsc(max_contrast_pixels=100, semantic_head=dict(
            type='KMeansSemanticHead', num_classes=16, feat_dim=tiny.feat_dim)))
    MODELS.build(tiny.dsc(max_contrast_pixels=128, semantic_head=dict(
        type='KMeansSemanticHead', num_classes=16, feat_dim=tiny.feat_dim)))
    MODELS.build(tiny.dsc(max_contrast_pixels=None))


def test_the_gathered_rows_cover_the_contrast_set_at_every_size_above_the_cap():
    for world in range(2, 40):
        for local in range(1, 60, 7):
            for cap in range(local // 2 + 1, world * local, 11):  # W x L > cap
                sizes = pixel_pool.sample_sizes(world, local, cap)
                assert sizes.other + (sizes.extra > 0) <= sizes.cluster <= local
                assert (world - 1) * sizes.other + sizes.extra == max(0, cap - local)
                assert cap <= world * sizes.cluster < cap + world


def test_one_process_is_never_bounded():
    # A cap below this process's own pixels still returns its whole pool: there are no other
    # ranks to sample from.
    block = _blocks(1)[0]
    contrast = bounded_pixel_pool(_key_dense(block), MATCH, max_pixels=4, seed=SEED)
    assert contrast.cluster_pixels is None and torch.equal(contrast.pixels, block)


def test_the_cap_counts_pixels_not_channels(ranks):
    # 2 ranks of 18 pixels with 8 channels and a cap of 20: 36 pixels exceed it (16 channel
    # "rows" would not), so the set is bounded: own 18 pixels + 2 of the other rank, and the
    # clustering sample is ceil(20 / 2) = 10 pixels of each rank.
    blocks = _blocks(2)
    with ranks(blocks):
        contrast = bounded_pixel_pool(_key_dense(blocks[0]), MATCH, 20, seed=SEED)
    assert contrast.pixels.shape == (LOCAL + 2, CHANNELS)
    assert contrast.cluster_pixels.shape == (20, CHANNELS)
