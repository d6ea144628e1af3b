"""The benchmark on a real Slurm (tools/ci/slurm_local.sh start; CI runs it): no mock of sbatch.

The tiny suite's configs, shortened to seconds: 64 px generated scenes, a 2-iteration DenseCL
pretraining, FCN fine-tuning for 6 iterations. Jobs request no GPUs (``cpu=True``) and one core.
"""
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

from dsc_mm.benchmark import BenchmarkRunner, Method, Suite, select_methods
from dsc_mm.benchmark.report import write_report
from dsc_mm.benchmark.runner import ITER_LINE
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


pytestmark = pytest.mark.skipif(_cluster_problem() is not None,
                                reason=str(_cluster_problem()))

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


def _runner(work, data, methods=('random', 'densecl'), pretrain=PRETRAIN, iters=6, every=6):
    suite = dataclasses.replace(TINY, protocols=tuple(
        p for p in TINY.protocols if p.key == 'voc-seg'))
    return BenchmarkRunner(suite, select_methods(suite, list(methods)), str(work), data=str(data),
                           pretrain_options=pretrain,
                           finetune_options=(*SMALL, *_schedule(iters, every)))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from dsc_mm.datasets.scenes import generate_scenes
    root = tmp_path_factory.mktemp('slurm_scenes') / 'scenes'
    return generate_scenes(root, num_train=4, num_val=2, num_unlabeled=8, size=64, seed=0)


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
    """``[(iteration, loss), ...]`` of a step's log."""
    return [(m[1], m[3]) for m in map(ITER_LINE.search, log.read_text().splitlines()) if m]


def _cells(work):
    return {p.name: json.loads(p.read_text()) for p in sorted((work / 'cells').glob('*'))}


@pytest.fixture(scope='module')
def submitted(tmp_path_factory, data):
    """The same plan through Slurm (submitted twice at once) and through a local run."""
    root = tmp_path_factory.mktemp('slurm_e2e')
    t0 = time.time()
    first = submit(_runner(root / 'slurm', data), OPTIONS)
    second = submit(_runner(root / 'slurm', data), OPTIONS)  # its jobs are queued or running
    record_after_second = read_record(str(root / 'slurm'))
    states = _wait_until_ended(root / 'slurm')
    slurm_seconds = time.time() - t0
    local = _runner(root / 'local', data)
    local.run()
    write_report(local, quiet=True)
    return dict(root=root, first=first, second=second, record=record_after_second,
                states=states, seconds=slurm_seconds)


def test_slurm_run_gives_the_cells_and_table_of_a_local_run(submitted):
    root = submitted['root']
    assert sorted(submitted['first']) == ['cell/densecl__voc-seg__seed0',
                                          'cell/random__voc-seg__seed0', 'pretrain/densecl',
                                          'report']
    assert {s.state for s in submitted['states'].values()} == {'COMPLETED'}
    slurm, local = _cells(root / 'slurm'), _cells(root / 'local')
    assert sorted(slurm) == sorted(local) == ['densecl__voc-seg__seed0.json',
                                              'random__voc-seg__seed0.json']
    for name in slurm:
        assert slurm[name]['status'] == local[name]['status'] == 'done'
        # Same commands, seeds and single CPU processes: the same numbers, to the 2 decimals
        # a cell keeps.
        assert slurm[name]['metrics'] == local[name]['metrics'], name
    # The cells' mIoU of 6 iterations barely moves; the training losses, printed to 4 decimals
    # at every iteration, show any difference of seed, data or command.
    for log in ('pretrain_DenseCL.log', 'finetune_Random_init_x_voc-seg_seed_0.log',
                'finetune_DenseCL_x_voc-seg_seed_0.log'):
        losses = [_losses(root / w / 'logs' / log) for w in ('slurm', 'local')]
        assert losses[0] and losses[0] == losses[1], (log, losses)
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


def test_status_grid_and_resubmission_of_a_finished_plan(submitted, load_script, capsys, data):
    benchmark = load_script('tools/benchmark.py')
    work = submitted['root'] / 'slurm'
    rows = {r.job.key: r for r in job_rows(_runner(work, data))}
    assert {r.status for r in rows.values()} == {'done'}
    assert rows['cell/densecl__voc-seg__seed0'].detail.startswith('mIoU ')
    # Everything is done: the same submission again submits nothing, not even the report.
    assert submit(_runner(work, data), OPTIONS) == {}
    # --status rebuilds the submission's plan from the work dir alone.
    benchmark.main(['--work-dir', str(work), '--status'])
    out = capsys.readouterr().out
    assert re.search(r'pretrain/densecl +done +\d+', out) and '3 done' in out


@pytest.fixture(scope='module')
def preempted(tmp_path_factory, data):
    """DenseCL's pretraining fails (a ResNet depth that does not exist); random init's cell is
    requeued with ``scontrol requeue`` once it has written a checkpoint."""
    work = tmp_path_factory.mktemp('slurm_requeue') / 'work'
    runner = _runner(work, data, pretrain=(*PRETRAIN, 'model.backbone.depth=7'), iters=24,
                     every=2)
    jobs = submit(runner, OPTIONS)
    cell_job = jobs['cell/random__voc-seg__seed0']
    last = work / 'finetune' / 'random' / 'voc-seg' / 'seed0' / 'last_checkpoint'
    deadline = time.time() + 300
    while not (last.is_file() and last.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    requeued_at = last.read_text().strip()
    subprocess.run(['scontrol', 'requeue', cell_job], check=True)
    # Slurm holds a requeued job back 2 minutes (Reason=BeginTime); let it start at once.
    deadline = time.time() + 60
    while time.time() < deadline:
        show = subprocess.run(['scontrol', 'show', 'job', cell_job], capture_output=True,
                              text=True).stdout
        if 'JobState=PENDING' in show and 'Reason=BeginTime' in show:
            subprocess.run(['scontrol', 'update', f'jobid={cell_job}', 'starttime=now'],
                           capture_output=True)
        elif re.search(r'JobState=(RUNNING|COMPLETED|FAILED)', show) and 'Restarts=1' in show:
            break  # (right after the requeue it is COMPLETING, then PENDING)
        time.sleep(0.5)
    states = _wait_until_ended(work)
    restarts = re.search(r'Restarts=(\d+)', subprocess.run(
        ['scontrol', 'show', 'job', cell_job], capture_output=True, text=True).stdout)
    return dict(work=work, runner=runner, jobs=jobs, states=states, requeued_at=requeued_at,
                restarts=int(restarts[1]) if restarts else None)


def test_requeued_fine_tuning_resumes_from_its_checkpoint(preempted):
    work = preempted['work']
    assert preempted['restarts'] == 1
    log = (work / 'logs' / 'finetune_Random_init_x_voc-seg_seed_0.log').read_text()
    runs = log.split('\n$ ')
    assert len(runs) == 2, 'the requeued job did not run the fine-tuning again'
    second = runs[1]
    assert ' --resume' in second.split('\n', 1)[0]
    resumed = re.search(r'resumed epoch: 0, iter: (\d+)', second)
    assert resumed and int(resumed[1]) >= 2, 'the requeued run started from zero'
    assert f'iter_{resumed[1]}.pth' in preempted['requeued_at'] or \
        int(resumed[1]) >= int(re.search(r'iter_(\d+)', preempted['requeued_at'])[1])
    trained = [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/24\]', second)]
    assert trained[0] == int(resumed[1]) + 1 and trained[-1] == 24
    # One cell file, written once, done; nothing set aside.
    assert sorted(p.name for p in (work / 'cells').iterdir()) == [
        'densecl__voc-seg__seed0.json', 'random__voc-seg__seed0.json']
    cell = json.loads((work / 'cells' / 'random__voc-seg__seed0.json').read_text())
    assert cell['status'] == 'done' and isinstance(cell['metrics']['mIoU'], float)
    print('\n'.join(['', 'requeue test, the resumed run:', second.split('\n', 1)[0][:200]]
                    + [line for line in second.splitlines() if 'resumed' in line.lower()
                       or 'Iter(train) [' in line][:4]))


def test_failed_pretraining_fails_its_cells_with_the_reason(preempted):
    work, jobs, states = preempted['work'], preempted['jobs'], preempted['states']
    pretrain = jobs['pretrain/densecl']
    assert states[pretrain].state == 'FAILED'
    assert states[jobs['cell/densecl__voc-seg__seed0']].state == 'CANCELLED'
    cell = json.loads((work / 'cells' / 'densecl__voc-seg__seed0.json').read_text())
    assert cell['status'] == 'failed'
    assert cell['reason'].startswith(f'its pretrain job {pretrain} failed: FAILED with exit '
                                     f'code 1:0; see {work}/slurm/{pretrain}_0_log.out')
    # The other method's cell is done, and the report job put both in the table.
    table = json.loads((work / 'results.json').read_text())
    assert {(c['method'], c['status']) for c in table['cells']} == {('random', 'done'),
                                                                    ('densecl', 'failed')}
    rows = {r.job.key: r for r in job_rows(preempted['runner'])}
    assert rows['pretrain/densecl'].status == 'failed'
    assert rows['cell/random__voc-seg__seed0'].status == 'done'


def test_two_slurm_tasks_give_the_losses_of_one_process_on_the_whole_batch(
        tmp_path, data, repo_root, monkeypatch):
    """The 2-process check of tests/test_reliability/test_distributed.py through Slurm (gloo)."""
    import shutil as sh
    images = sorted((data / 'unlabeled').glob('*.jpg'))[:8]
    (tmp_path / 'two').mkdir()
    (tmp_path / 'one').mkdir()
    for i, image in enumerate(images):
        sh.copy(image, tmp_path / 'two' / f'{i:02d}.jpg')
    for position, i in enumerate([0, 2, 4, 6, 1, 3, 5, 7]):  # all-gather order of 2 ranks x 4
        sh.copy(images[i], tmp_path / 'one' / f'{position:02d}.jpg')
    config = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_dist.py'
    # loss_recorder (the hook that saves each process's first losses), here and in the jobs.
    monkeypatch.syspath_prepend(str(repo_root / 'tests' / 'test_reliability'))
    monkeypatch.setenv('PYTHONPATH', str(repo_root / 'tests' / 'test_reliability'))

    def options(folder, batch):
        return (f'train_dataloader.dataset.data_root={tmp_path}',
                f'train_dataloader.dataset.folders=[{folder}]',
                f'train_dataloader.batch_size={batch}')
    suite = Suite('dist', methods=(Method('dsc-km', 'DSC-KM', config), ), protocols=(),
                  data_env='UNUSED', default_methods=('dsc-km', ))
    runner = BenchmarkRunner(suite, suite.methods, str(tmp_path / 'slurm'), gpus=2,
                             pretrain_options=options('two', 4))
    jobs = submit(runner, OPTIONS)
    _wait_until_ended(tmp_path / 'slurm')
    job_log = (tmp_path / 'slurm' / 'slurm' / f'{jobs["pretrain/dsc-km"]}_0_log.out').read_text()
    # The job's training ran as 2 Slurm tasks; its conversion afterwards fails on purpose: the
    # test model is a narrow ResNet (16 channels) that no torchvision backbone matches.
    assert 'process 0 of 2' in job_log and 'iter 1/1' in job_log, job_log
    assert "conversion of DSC-KM failed" in job_log, job_log
    one = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir',
                          str(tmp_path / 'one_run'), '--cfg-options', *options('one', 8)],
                         cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    run = tmp_path / 'slurm' / 'pretrain' / 'dsc-km'
    ranks = [torch.load(run / f'first_losses_rank{r}.pth') for r in range(2)]
    single = torch.load(tmp_path / 'one_run' / 'first_losses_rank0.pth')
    for term in ('loss_instance', 'loss_pixel', 'loss_semantic'):
        two = (ranks[0][term] + ranks[1][term]) / 2
        assert torch.allclose(two, single[term], rtol=1e-5, atol=1e-6), (term, two, single)
    assert not torch.allclose(ranks[0]['loss_instance'], ranks[1]['loss_instance'])
