"""The reliability hooks across 2 gloo processes (a toy run under DDP, see gloo_runs.py): each
process's generator states are saved and restored on resume, and a non-finite loss on one rank
stops both ranks at the same iteration."""
import pytest
import torch

from dsc_mm.utils import load_checkpoint_file
from gloo_runs import run_two_processes


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp('gloo_hooks')
    records = run_two_processes(root)
    for rank, record in enumerate(records):
        assert 'error' not in record, f'rank {rank}: {record["error"]}'
    return root, records


def _equal_states(a: dict, b: dict) -> bool:
    return (torch.equal(a['torch'], b['torch']) and a['numpy'][0] == b['numpy'][0]
            and torch.equal(a['numpy'][1], b['numpy'][1]) and a['numpy'][2:] == b['numpy'][2:]
            and tuple(a['random'][1]) == tuple(b['random'][1]))


def test_each_process_state_is_saved_in_the_checkpoint(ranks):
    root, records = ranks
    saved = load_checkpoint_file(str(root / 'resumed' / 'iter_2.pth'))['meta']['rng_states']
    assert len(saved) == 2
    for rank, record in enumerate(records):
        # What rank r held at the checkpoint iteration is entry r (rank 0 writes the file).
        assert _equal_states(saved[rank], record['at_checkpoint']['rng']), rank
    assert not _equal_states(saved[0], saved[1])  # the seeds differ per rank


def test_resumed_two_process_run_equals_the_uninterrupted_one(ranks):
    _, records = ranks
    for rank, record in enumerate(records):
        # Every process continues its own streams: the same final generator states and, since
        # the noise of both ranks enters the averaged gradient, the same weights.
        assert _equal_states(record['resumed']['rng'], record['full']['rng']), rank
        assert torch.equal(record['resumed']['weight'], record['full']['weight']), rank
    assert not _equal_states(records[0]['full']['rng'], records[1]['full']['rng'])


def test_a_non_finite_loss_on_one_rank_stops_both_before_the_checkpoint(ranks):
    root, records = ranks
    kept = root / 'stop' / 'iter_2.pth'
    tail = (f' at iteration 3; training stopped before saving this state (the last good '
            f'checkpoint {kept} was kept): resume from it')
    assert records[1]['stop'].startswith('loss_empty is nan' + tail), records[1]['stop']
    # Rank 0's own losses, weights and optimizer state are finite: only the all-reduce of the
    # flags tells it, and it stops at the same iteration instead of waiting in the next one.
    assert records[0]['stop'].startswith('a loss term is not finite on another process' + tail), \
        records[0]['stop']
    assert sorted(p.name for p in (root / 'stop').glob('*.pth')) == ['iter_1.pth', 'iter_2.pth']
