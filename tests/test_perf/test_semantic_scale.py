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
    key_dense = blocks[0].reshape(2, 9, 8).permute(0, 2, 1)
    match = torch.zeros(2, 9, dtype=torch.long)
    ranks = scale.SimulatedRanks(4, blocks)
    ranks.install()
    try:
        full = pixel_pool.bounded_pixel_pool(key_dense, match, None, seed=1)
        bounded = pixel_pool.bounded_pixel_pool(key_dense, match, 36, seed=1)
    finally:
        ranks.uninstall()
    assert pixel_pool.get_world_size() == 1  # restored
    assert torch.equal(full.pixels, torch.cat([blocks[r] for r in range(4)]))
    # 18 own + 6 from each of the 3 others; the others' rows are the ones their picks name.
    assert torch.equal(bounded.pixels[:18], blocks[0])
    for r in range(1, 4):
        assert torch.equal(bounded.pixels[18 + 6 * (r - 1):18 + 6 * r], blocks[r][ranks.picks[r]])


def test_table_has_one_row_per_head_and_world_size(scale, capsys):
    scale.main(['--world', '2', '4', '--batch', '2', '--grid', '3', '--channels', '8',
                '--classes', '4', '--cap', '36', '--repeats', '1'])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith('| DSC-')]
    assert len(rows) == 4
    # | head | W | N | contrast set | ...: at W=4 the pool of 72 is bounded to the cap of 36.
    sizes = {(r.split('|')[1].strip(), int(r.split('|')[2])): int(r.split('|')[4]) for r in rows}
    assert sizes[('DSC-KM', 2)] == 36 and sizes[('DSC-KM', 4)] == 36
