"""The benchmark on a real Slurm (tools/ci/slurm_local.sh start; CI runs it): no mock of sbatch.

The tiny suite's configs, shortened to seconds: 64 px generated scenes, a 2-iteration DenseCL
pretraining, FCN fine-tuning for 8 iterations. Jobs request no GPUs (``cpu=True``) and one core.
One submission (module fixture ``submitted``) serves every end-to-end test: its cells against a
local run of the same plan, a requeued cell's resume, and a method whose pretraining fails.
"""
import dataclasses
import json
import re
import shutil
import subprocess
import time

import pytest
import torch

from dsc_mm.benchmark import BenchmarkRunner, Method, Suite, select_methods
from dsc_mm.benchmark.report import write_report
from dsc_mm.benchmark.runner import ITER_LINE, REPO_ROOT
from dsc_mm.benchmark.slurm import DEFAULT_TIME, SlurmOptions, submit
from dsc_mm.benchmark.slurm_state import job_states, latest_ids, read_record
from dsc_mm.benchmark.status import job_rows
from dsc_mm.benchmark.suites import TINY


def _cluster_problem():
    if shutil.which('sinfo') is None:
        return 'sinfo not found: no Slurm here (tools/ci/slurm_local.sh start makes one; CI does)'
    out = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True)
    if out.returncode or not re.search(r'idle|mixed|allocated', out.stdout):
        return ('the Slurm cluster is not up (sinfo: '
                f'{(out.stdout or out.stderr).strip()[:80]!r}); tools/ci/slurm_local.sh start')
    return None


# The 2-task test shares its one-process control (dist_control) with
# tests/test_reliability/test_distributed.py: one xdist worker runs both files.
pytestmark = [pytest.mark.skipif(_cluster_problem() is not None, reason=str(_cluster_problem())),
              pytest.mark.xdist_group('dist_control')]

OPTIONS = SlurmOptions(cpu=True, gpus_per_node=2, cpus_per_gpu=1,
                       time=dict(DEFAULT_TIME, pretrain='00:15:00', finetune='00:15:00'))
PRETRAIN = ('train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
            'param_scheduler.0.T_max=2', 'param_scheduler.0.end=2',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1')
SMALL = ('train_dataloader.dataset.pipeline.2.scale=(256,64)',
         'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
         'model.data_preprocessor.size=(64,64)',
         'val_dataloader.dataset.pipeline.1.scale=(256,64)', 'val_dataloader.dataset.indices=2',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
         'default_hooks.logger.interval=1')


def _schedule(iters, every):
    return (f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={iters}', f'default_hooks.checkpoint.interval={every}')


def _runner(work, data, methods, iters=8, every=4):
    suite = dataclasses.replace(TINY, protocols=tuple(
        p for p in TINY.protocols if p.key == 'voc-seg'))
    return BenchmarkRunner(suite, methods, str(work), data=str(data), pretrain_options=PRETRAIN,
                           finetune_options=(*SMALL, *_schedule(iters, every)))


@pytest.fixture(scope='module')
def data(scenes_64):
    """The shared 64 px scenes (tests/conftest.py): 4 train, 2 val, 12 unlabeled images."""
    return scenes_64


def _wait_until_ended(work, timeout=600):
    """Wait until every job of the record has ended; returns their states."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = job_states(latest_ids(read_record(str(work))).values())
        if states and not any(s.active for s in states.values()):
            return states
        time.sleep(1)
    squeue = subprocess.run(['squeue'], capture_output=True, text=True).stdout
    pytest.fail(f'jobs of {work} still queued or running after {timeout} s:\n{squeue}')


def _losses(log):
    """``[(iteration, loss), ...]`` of a step's log (every run of it, in order)."""
    return [(m[1], m[3]) for m in map(ITER_LINE.search, log.read_text().splitlines()) if m]


def _cells(work):
    return {p.name: json.loads(p.read_text()) for p in sorted((work / 'cells').glob('*'))}


def _requeue_after_first_checkpoint(job_id, last):
    """``scontrol requeue`` the running cell job once ``last`` (its ``last_checkpoint``) names a
    checkpoint, and let the requeued job start at once; returns what ``last`` named then."""
    deadline = time.time() + 300
    while not (last.is_file() and last.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    requeued_at = last.read_text().strip()
    subprocess.run(['scontrol', 'requeue', job_id], check=True)
    # Slurm holds a requeued job back 2 minutes (Reason=BeginTime); let it start at once.
    deadline = time.time() + 60
    while time.time() < deadline:
        show = subprocess.run(['scontrol', 'show', 'job', job_id], capture_output=True,
                              text=True).stdout
        if 'JobState=PENDING' in show and 'Reason=BeginTime' in show:
            subprocess.run(['scontrol', 'update', f'jobid={job_id}', 'starttime=now'],
                           capture_output=True)
        elif re.search(r'JobState=(RUNNING|COMPLETED|FAILED)', show) and 'Restarts=1' in show:
            break  # (right after the requeue it is COMPLETING, then PENDING)
        time.sleep(0.5)
    return requeued_at


@pytest.fixture(scope='module')
def submitted(tmp_path_factory, data):
    """One plan through Slurm (submitted twice at once) and through a local run: random init,
    DenseCL, and a DenseCL whose pretraining fails (a ResNet depth that does not exist). Random
    init's cell job is requeued with ``scontrol requeue`` once it has written a checkpoint."""
    root = tmp_path_factory.mktemp('slurm_e2e')
    broken_config = root / 'densecl_broken.py'
    densecl = next(m for m in TINY.methods if m.key == 'densecl')
    broken_config.write_text(f"_base_ = '{REPO_ROOT}/{densecl.config}'\n"
                             "model = dict(backbone=dict(depth=7))\n")
    methods = (*select_methods(TINY, ['random', 'densecl']),
               Method('broken', 'Broken DenseCL', str(broken_config)))
    t0 = time.time()
    runner = _runner(root / 'slurm', data, methods)
    first = submit(runner, OPTIONS)
    second = submit(_runner(root / 'slurm', data, methods), OPTIONS)  # its jobs are queued
    record_after_second = read_record(str(root / 'slurm'))
    requeued_at = _requeue_after_first_checkpoint(
        first['cell/random__voc-seg__seed0'],
        root / 'slurm' / 'finetune' / 'random' / 'voc-seg' / 'seed0' / 'last_checkpoint')
    # The same plan on this machine, while the Slurm jobs run.
    local = _runner(root / 'local', data, methods)
    local.log = lambda line: None
    local.run()
    write_report(local, quiet=True)
    states = _wait_until_ended(root / 'slurm')
    restarts = re.search(r'Restarts=(\d+)', subprocess.run(
        ['scontrol', 'show', 'job', first['cell/random__voc-seg__seed0']], capture_output=True,
        text=True).stdout)
    return dict(root=root, work=root / 'slurm', runner=runner, first=first, second=second,
                record=record_after_second, states=states, seconds=time.time() - t0,
                requeued_at=requeued_at, restarts=int(restarts[1]) if restarts else None)


def test_slurm_run_gives_the_cells_and_table_of_a_local_run(submitted):
    root = submitted['root']
    assert sorted(submitted['first']) == ['cell/broken__voc-seg__seed0',
                                          'cell/densecl__voc-seg__seed0',
                                          'cell/random__voc-seg__seed0', 'pretrain/broken',
                                          'pretrain/densecl', 'report']
    states = {key: submitted['states'][job].state for key, job in submitted['first'].items()}
    assert states == dict({key: 'COMPLETED' for key in submitted['first']},
                          **{'pretrain/broken': 'FAILED', 'cell/broken__voc-seg__seed0':
                             'CANCELLED'}), states
    slurm, local = _cells(root / 'slurm'), _cells(root / 'local')
    assert sorted(slurm) == sorted(local) == ['broken__voc-seg__seed0.json',
                                              'densecl__voc-seg__seed0.json',
                                              'random__voc-seg__seed0.json']
    assert slurm['broken__voc-seg__seed0.json']['status'] == 'failed'
    assert local['broken__voc-seg__seed0.json']['status'] == 'failed'
    for name in ('densecl__voc-seg__seed0.json', 'random__voc-seg__seed0.json'):
        assert slurm[name]['status'] == local[name]['status'] == 'done'
        # Same commands, seeds and single CPU processes: the same numbers, to the 2 decimals
        # a cell keeps; random init's cell also through its requeue and resume.
        assert slurm[name]['metrics'] == local[name]['metrics'], name
    # The cells' mIoU of 8 iterations barely moves; the training losses, printed to 4 decimals
    # at every iteration, show any difference of seed, data or command. The requeued cell's log
    # holds both of its runs: the iterations trained again after the resume repeat the
    # uninterrupted run's losses exactly.
    for log in ('pretrain_DenseCL.log', 'finetune_Random_init_x_voc-seg_seed_0.log',
                'finetune_DenseCL_x_voc-seg_seed_0.log'):
        losses = [_losses(root / w / 'logs' / log) for w in ('slurm', 'local')]
        assert losses[1] and set(losses[0]) == set(losses[1]), (log, losses)
        assert len(losses[1]) == len(set(losses[1])), (log, losses[1])
    tables = [json.loads((root / w / 'results.json').read_text()) for w in ('slurm', 'local')]
    assert tables[0]['table'] == tables[1]['table']
    md = [(root / w / 'results.md').read_text().split('\n\n', 2)[2] for w in ('slurm', 'local')]
    assert md[0] == md[1]  # the same table layout (the header names the work dir)
    assert (root / 'slurm' / 'results.png').is_file()
    print(f'\nslurm end to end: {submitted["seconds"]:.0f} s from submission to the last job')


def test_submitting_again_while_queued_submits_nothing(submitted):
    assert submitted['second'] == {}
    record = submitted['record']
    assert all(len(ids) == 1 for ids in record['jobs'].values()), record
    assert set(record['jobs']) == set(submitted['first'])


def test_requeued_fine_tuning_resumes_from_its_checkpoint(submitted):
    work = submitted['work']
    assert submitted['restarts'] == 1
    log = (work / 'logs' / 'finetune_Random_init_x_voc-seg_seed_0.log').read_text()
    runs = log.split('\n$ ')
    assert len(runs) == 2, 'the requeued job did not run the fine-tuning again'
    first, second = runs
    assert ' --resume' not in first.split('\n', 1)[0] and ' --resume' in second.split('\n', 1)[0]
    # The resume starts from the last checkpoint the killed run saved (at or after the one
    # named when the requeue was sent), and trains only the iterations after it.
    saved = [int(i) for i in re.findall(r'Saving checkpoint at (\d+) iterations', first)]
    requeued_at = int(re.search(r'iter_(\d+)\.pth', submitted['requeued_at'])[1])
    assert saved and saved[-1] >= requeued_at and saved[-1] < 8, (saved, requeued_at)
    resumed = re.search(r'resumed epoch: 0, iter: (\d+)', second)
    assert resumed and int(resumed[1]) == saved[-1], 'the requeued run did not resume its ' \
        'last checkpoint'
    trained = [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/8\]', second)]
    assert trained == list(range(saved[-1] + 1, 9)), trained
    # One cell file per cell, written once; nothing set aside.
    assert sorted(p.name for p in (work / 'cells').iterdir()) == [
        'broken__voc-seg__seed0.json', 'densecl__voc-seg__seed0.json',
        'random__voc-seg__seed0.json']
    cell = json.loads((work / 'cells' / 'random__voc-seg__seed0.json').read_text())
    assert cell['status'] == 'done' and isinstance(cell['metrics']['mIoU'], float)
    print('\n'.join(['', 'requeue test, the resumed run:', second.split('\n', 1)[0][:200]]
                    + [line for line in second.splitlines() if 'resumed' in line.lower()
                       or 'Iter(train) [' in line][:4]))


def test_failed_pretraining_fails_its_cells_with_the_reason(submitted):
    work, jobs, states = submitted['work'], submitted['first'], submitted['states']
    pretrain = jobs['pretrain/broken']
    assert states[pretrain].state == 'FAILED'
    assert states[jobs['cell/broken__voc-seg__seed0']].state == 'CANCELLED'
    cell = json.loads((work / 'cells' / 'broken__voc-seg__seed0.json').read_text())
    assert cell['status'] == 'failed'
    assert cell['reason'].startswith(f'its pretrain job {pretrain} failed: FAILED with exit '
                                     f'code 1:0; see {work}/slurm/{pretrain}_0_log.out')
    # The other methods' cells are done, and the report job put all of them in the table.
    table = json.loads((work / 'results.json').read_text())
    assert {(c['method'], c['status']) for c in table['cells']} == {
        ('random', 'done'), ('densecl', 'done'), ('broken', 'failed')}
    rows = {r.job.key: r for r in job_rows(submitted['runner'])}
    assert rows['pretrain/broken'].status == 'failed'
    assert rows['cell/broken__voc-seg__seed0'].status == 'failed'
    assert rows['cell/random__voc-seg__seed0'].status == 'done'


def test_status_grid_and_resubmission_of_a_finished_plan(submitted, load_script, capsys, data):
    benchmark = load_script('tools/benchmark.py')
    work = submitted['work']
    rows = {r.job.key: r for r in job_rows(submitted['runner'])}
    assert {k: r.status for k, r in rows.items() if 'broken' not in k} == {
        k: 'done' for k in rows if 'broken' not in k}
    assert rows['cell/densecl__voc-seg__seed0'].detail.startswith('mIoU ')
    # --status rebuilds the submission's plan from the work dir alone.
    benchmark.main(['--work-dir', str(work), '--status'])
    out = capsys.readouterr().out
    assert re.search(r'pretrain/densecl +done +\d+', out) and '3 done, 2 failed' in out, out
    # Everything of the plan without the broken row is done: submitting it again submits
    # nothing, not even the report.
    assert submit(_runner(work, data, submitted['runner'].methods[:2]), OPTIONS) == {}


def test_two_slurm_tasks_give_the_losses_of_one_process_on_the_whole_batch(
        tmp_path, dist_control, repo_root, monkeypatch):
    """The 2-process check of tests/test_reliability/test_distributed.py through Slurm (gloo),
    against the same one-process control (the session fixture ``dist_control``)."""
    config = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_dist.py'
    # loss_recorder (the hook that saves each process's first losses), here and in the jobs.
    monkeypatch.syspath_prepend(str(repo_root / 'tests' / 'test_reliability'))
    monkeypatch.setenv('PYTHONPATH', str(repo_root / 'tests' / 'test_reliability'))
    suite = Suite('dist', methods=(Method('dsc-km', 'DSC-KM', config), ), protocols=(),
                  data_env='UNUSED', default_methods=('dsc-km', ))
    runner = BenchmarkRunner(suite, suite.methods, str(tmp_path / 'slurm'), gpus=2,
                             pretrain_options=(f'train_dataloader.dataset.data_root={dist_control}',
                                               'train_dataloader.dataset.folders=[two]',
                                               'train_dataloader.batch_size=4'))
    jobs = submit(runner, OPTIONS)
    _wait_until_ended(tmp_path / 'slurm')
    job_log = (tmp_path / 'slurm' / 'slurm' / f'{jobs["pretrain/dsc-km"]}_0_log.out').read_text()
    # The job's training ran as 2 Slurm tasks; its conversion afterwards fails on purpose: the
    # test model is a narrow ResNet (16 channels) that no torchvision backbone matches.
    assert 'process 0 of 2' in job_log and 'iter 1/1' in job_log, job_log
    assert "conversion of DSC-KM failed" in job_log, job_log
    run = tmp_path / 'slurm' / 'pretrain' / 'dsc-km'
    ranks = [torch.load(run / f'first_losses_rank{r}.pth') for r in range(2)]
    single = torch.load(dist_control / 'work1' / 'first_losses_rank0.pth')
    for term in ('loss_instance', 'loss_pixel', 'loss_semantic'):
        two = (ranks[0][term] + ranks[1][term]) / 2
        assert torch.allclose(two, single[term], rtol=1e-5, atol=1e-6), (term, two, single)
    assert not torch.allclose(ranks[0]['loss_instance'], ranks[1]['loss_instance'])
