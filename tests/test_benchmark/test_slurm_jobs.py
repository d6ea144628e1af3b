"""The Slurm plan without a cluster: jobs per kind, their processes and nodes, input mistakes."""
import os
import re

import pytest

from dsc_mm.benchmark import BenchmarkRunner, select_methods, select_protocols
from dsc_mm.benchmark.slurm import SlurmOptions, check
from dsc_mm.benchmark.slurm_jobs import layout, minutes, plan_jobs
from dsc_mm.benchmark.slurm_state import (SlurmError, require_slurm, submission_lock,
                                          write_record)
from dsc_mm.benchmark.status import job_rows
from dsc_mm.benchmark.suites import SUITES


def _paper(tmp_path, **kwargs):
    suite = select_protocols(SUITES['paper'])
    return BenchmarkRunner(suite, select_methods(suite), str(tmp_path / 'paper'), **kwargs)


def test_paper_plan_is_one_job_per_pretraining_and_per_cell(tmp_path):
    jobs = plan_jobs(_paper(tmp_path))
    pretrain = [j for j in jobs if j.kind == 'pretrain']
    cells = [j for j in jobs if j.kind == 'finetune']
    assert [j.key for j in pretrain] == [f'pretrain/{m}' for m in
                                         ('mocov2', 'densecl', 'dsc-km', 'dsc-pm')]
    # The conversion runs in its pretraining job, after the training.
    assert all([s.kind for s in j.steps] == ['pretrain', 'convert'] for j in pretrain)
    assert all(j.tasks == 8 for j in pretrain)
    # 5 rows x (5 VOC det seeds + 5 VOC12aug seeds + COCO + Cityscapes + ImageNet linear).
    assert len(cells) == 5 * (5 + 5 + 1 + 1 + 1) and len(jobs) == 4 + 65
    tasks = {j.steps[0].protocol.key: j.tasks for j in cells}
    assert tasks == {'voc-det': 8, 'coco-det': 8, 'voc-seg': 4, 'cityscapes-seg': 4,
                     'in1k-linear': 8}
    for job in cells:
        method = job.steps[0].method.key
        assert job.after == (() if method == 'random' else (f'pretrain/{method}', ))


def test_user_checkpoint_row_gets_a_conversion_job(tmp_path):
    suite = select_protocols(SUITES['tiny'])
    methods = select_methods(suite, ['random'], ['Mine=/ckpt/mine.pth'])
    jobs = plan_jobs(BenchmarkRunner(suite, methods, str(tmp_path)))
    assert [j.key for j in jobs if j.kind == 'convert'] == ['convert/mine']
    assert {j.after for j in jobs if j.kind == 'finetune'} == {(), ('convert/mine', )}


def test_layout_spans_nodes_and_refuses_uneven_splits():
    assert layout(4, 8) == (1, 4)
    assert layout(16, 8) == (2, 8)
    with pytest.raises(ValueError, match='cannot be split evenly over nodes of 8 GPUs'):
        layout(12, 8)


@pytest.mark.parametrize('text, expected', [('90', 90), ('12:00:00', 720), ('2-00:00:00', 2880),
                                            ('1-12', 2160), ('00:00:30', 1), ('5:30', 6)])
def test_time_limits_in_slurm_formats(text, expected):
    assert minutes(text) == expected


def test_bad_time_and_too_large_job_are_one_sentence(tmp_path):
    runner = _paper(tmp_path, gpus=16)
    with pytest.raises(SlurmError, match=r"--time pretrain=3 days: time limit '3 days' is not"):
        check(runner, SlurmOptions(time={'pretrain': '3 days'}), query_cluster=False)
    with pytest.raises(SlurmError, match=r'pretrain/mocov2 needs 16 GPUs, more than '
                                         r'--gpus-per-node 8 x 1 node\(s\) allowed'):
        check(runner, SlurmOptions(max_nodes=1), query_cluster=False)
    check(runner, SlurmOptions(max_nodes=2), query_cluster=False)  # 2 nodes of 8 fit
    with pytest.raises(SlurmError, match=r"--mem-per-gpu '40 GB' is not a memory size"):
        check(runner, SlurmOptions(mem_per_gpu='40 GB'), query_cluster=False)


def test_no_sbatch_on_the_path_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(SlurmError, match='sbatch and scontrol and sinfo not found on the PATH'):
        require_slurm()


def test_cli_refuses_before_submitting(load_script, capsys, tmp_path, monkeypatch):
    benchmark = load_script('tools/benchmark.py')
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        benchmark.main(['--suite', 'tiny', '--work-dir', str(tmp_path / 'w'),
                        '--launcher', 'slurm'])
    assert str(exc.value).startswith('error: sbatch and scontrol and sinfo not found')
    assert not (tmp_path / 'w').exists()  # nothing written, nothing submitted
    with pytest.raises(SystemExit) as exc:
        benchmark.main(['--suite', 'tiny', '--launcher', 'slurm', '--time', 'train=1:00:00'])
    assert 'error: --time expects KIND=LIMIT' in str(exc.value)


def test_paper_slurm_dry_run_summary(load_script, capsys):
    benchmark = load_script('tools/benchmark.py')
    benchmark.main(['--suite', 'paper', '--launcher', 'slurm', '--dry-run'])
    out = capsys.readouterr().out
    assert out.startswith('70 Slurm jobs for suite paper (5 rows, 5 protocols):')
    assert re.search(r'4 x pretrain +8 GPUs \(1 node\), time limit 3-00:00:00\n', out)
    assert re.search(r'20 x finetune voc-det +8 GPUs \(1 node\), time limit 1-00:00:00, '
                     r'afterok on its method\'s pretraining', out)
    assert re.search(r' 5 x finetune voc-det +8 GPUs .*limit 1-00:00:00\n', out)  # random init
    assert re.search(r'20 x finetune voc-seg +4 GPUs .*afterok', out)  # 5 seeds x 4 methods
    assert re.search(r' 5 x finetune voc-seg +4 GPUs .*limit 1-00:00:00\n', out)  # random init


def test_work_dir_held_by_another_submission(tmp_path):
    with submission_lock(str(tmp_path)):
        pid = os.fork()
        if pid == 0:  # a second submitter: must be refused while the first holds the lock
            try:
                with submission_lock(str(tmp_path)):
                    os._exit(1)
            except SlurmError as exc:
                os._exit(0 if 'is held by another submission (pid' in str(exc) else 2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_status_of_jobs_slurm_no_longer_knows(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))  # no scontrol, no sacct: no state for any id
    suite = select_protocols(SUITES['tiny'], ['voc-probe'])
    runner = BenchmarkRunner(suite, select_methods(suite, ['random', 'densecl']), str(tmp_path))
    write_record(str(tmp_path), dict(suite='tiny', jobs={'pretrain/densecl': ['41']}))
    rows = {r.job.key: r for r in job_rows(runner)}
    assert rows['cell/random__voc-probe__seed0'].status == 'not submitted'
    assert rows['pretrain/densecl'].status == 'failed'
    assert rows['pretrain/densecl'].detail.startswith('Slurm no longer knows job 41')
    cell = rows['cell/densecl__voc-probe__seed0']
    assert cell.status == 'failed' and cell.detail.startswith('its pretrain job 41 failed')
