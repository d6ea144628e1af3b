"""perf/_common.py: the helpers behind the step and data-pipeline tables (not timings)."""

import time

import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def common(load_script):
    return load_script('perf/_common.py')


def test_rotations_run_every_method_once_per_round_with_a_new_first(common):
    names = ['MoCo v2', 'DenseCL', 'DSC-KM', 'DSC-PM']
    orders = common.rotations(names, 6)
    assert len(orders) == 6
    assert all(sorted(order) == sorted(names) for order in orders)
    assert [order[0] for order in orders] == names + names[:2]


def test_summarize_gives_median_quartiles_and_range(common):
    s = common.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s == dict(median=3.0, q1=2.0, q3=4.0, min=1.0, max=5.0)
    assert common.summarize([7.0]) == dict(median=7.0, q1=7.0, q3=7.0, min=7.0, max=7.0)


def test_peak_rss_excludes_what_was_freed_before_the_reset(common):
    big = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    big_peak = common.peak_rss_mib()
    assert big_peak >= common.current_rss_mib()
    del big
    if not common.reset_peak_rss():
        pytest.skip('/proc/self/clear_refs is not writable here: the peak cannot be reset.')
    # After the reset the peak is the current RSS, i.e. the freed 64 MiB are gone from it.
    assert common.peak_rss_mib() < big_peak - 32
    small = np.ones(16 * 2**20 // 8)  # 16 MiB
    assert common.peak_rss_mib() >= common.current_rss_mib() > 0
    del small


def test_process_clock_counts_cpu_time_not_waiting(common):
    # The process clock advances with this process's CPU work and not while it waits (other
    # jobs on the machine); the wall clock, the control, advances while it waits.
    process = common.make_clock('process', torch.device('cpu'))
    wall = common.make_clock('wall', torch.device('cpu'))
    p0, w0 = process(), wall()
    time.sleep(0.3)
    assert process() - p0 < 0.1 and wall() - w0 >= 0.3
    p0, t0 = process(), time.thread_time()
    while time.thread_time() - t0 < 0.2:  # 0.2 s of CPU in this thread
        pass
    assert process() - p0 >= 0.2


def test_process_clock_is_refused_for_an_accelerator(common):
    with pytest.raises(SystemExit, match='--clock wall'):
        common.make_clock('process', torch.device('cuda'))
