"""perf/semantic_scale.py: its simulated ranks and its table (tiny sizes, no timings checked)."""

import pytest
import torch


@pytest.fixture(scope='module')
def scale(load_script):
    return load_script('perf/semantic_scale.py')


def test_simulated_ranks_gather_what_the_other_ranks_hold(scale):
    from dsc_mm.models.utils import pixel_pool
    centres = scale.class_centres(8)
    blocks = {r: scale.rank_pixels(r, 18, centres) for r in range(4)}
    key_dense = blocks[1].reshape(2, 9, 8).permute(0, 2, 1)
    match = torch.zeros(2, 9, dtype=torch.long)
    with scale.SimulatedRanks(blocks, rank=1):
        full = pixel_pool.bounded_pixel_pool(key_dense, match, None, seed=1)
        bounded = pixel_pool.bounded_pixel_pool(key_dense, match, 36, seed=1)
    assert pixel_pool.get_world_size() == 1  # restored
    assert torch.equal(full.pixels, torch.cat([blocks[r] for r in range(4)]))
    # Every rank sends its first 9 drawn rows (ceil(36 / 4)): the sample holds all of them; the
    # contrast set is rank 1's 18 pixels + 6 of ranks 2, 3 and 0 (ring order after rank 1).
    sent = {r: blocks[r][pixel_pool.sample_rows(18, 9, 1, r, 'cpu')] for r in range(4)}
    assert torch.equal(bounded.cluster_pixels, torch.cat([sent[r] for r in range(4)]))
    assert torch.equal(bounded.pixels, torch.cat([blocks[1]] + [sent[r][:6] for r in (2, 3, 0)]))


def test_table_has_one_row_per_head_and_world_size(scale, capsys):
    scale.main(['--world', '2', '4', '--batch', '2', '--grid', '3', '--channels', '8',
                '--classes', '4', '--cap', '36', '--repeats', '1'])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith('| DSC-')]
    assert len(rows) == 4
    # | head | W | N | contrast set | sample | ...: at W=4 the pool of 72 is bounded to 36.
    cells = {(r.split('|')[1].strip(), int(r.split('|')[2])): r.split('|')[4:6] for r in rows}
    assert [c.strip() for c in cells[('DSC-KM', 2)]] == ['36', 'whole pool']
    # At W=4 the clustering sample is ceil(36 / 4) = 9 pixels of each of the 4 ranks.
    assert [c.strip() for c in cells[('DSC-KM', 4)]] == ['36', '36']
