"""The benchmark runner: a run killed with SIGKILL and started again never redoes finished cells."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from dsc_mm.benchmark import BenchmarkRunner, Method, Protocol, Suite, select_methods
from dsc_mm.benchmark.suites import SUITES

# Stands in for tools/train.py: logs its call, takes a moment, writes an mmengine-style
# evaluation line into <work_dir>/<timestamp>/vis_data/scalars.json.
FAKE_TRAIN = '''
import json, os, sys, time
work_dir, calls, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(calls, 'a') as f:
    f.write(work_dir + '\\n')
time.sleep(0.4)
os.makedirs(os.path.join(work_dir, 't0', 'vis_data'), exist_ok=True)
with open(os.path.join(work_dir, 't0', 'vis_data', 'scalars.json'), 'a') as f:
    f.write(json.dumps({'fake/AP': 0.1 + 0.01 * seed, 'mIoU': 40.0 + seed, 'step': 1}) + '\\n')
'''

DRIVER = '''
import sys
sys.path.insert(0, {repo!r})
from dsc_mm.benchmark import BenchmarkRunner, Method, Protocol, Suite
from dsc_mm.benchmark.report import write_report

class FakeTrainRunner(BenchmarkRunner):
    def command(self, step):
        return [sys.executable, {fake!r}, self.finetune_dir(step.method, step.protocol, step.seed),
                {calls!r}, str(step.seed)]

suite = Suite('fake', methods=(Method('random', 'Random init'), Method('random-b', 'Random B')),
              protocols=(Protocol('det', 'Det', 'det.py', {{'AP': 'fake/AP'}}, scale=100.),
                         Protocol('seg', 'Seg', 'seg.py', {{'mIoU': 'mIoU'}})),
              data_env='UNUSED', default_methods=('random', 'random-b'))
runner = FakeTrainRunner(suite, suite.methods, {work!r}, seeds=1)
runner.run(on_cell_done=lambda: write_report(runner, quiet=True))
print(write_report(runner))
'''


def _driver(tmp_path, repo_root):
    fake = tmp_path / 'fake_train.py'
    fake.write_text(FAKE_TRAIN)
    calls, work = tmp_path / 'calls.log', tmp_path / 'bench'
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER.format(repo=str(repo_root), fake=str(fake), calls=str(calls),
                                    work=str(work)))
    return driver, calls, work


def _done_cells(work):
    cells = work / 'cells'
    if not cells.is_dir():
        return {}
    out = {}
    for p in cells.glob('*.json'):
        record = json.loads(p.read_text())
        if record['status'] == 'done':
            out[record['work_dir']] = record
    return out


def test_killed_benchmark_resumes_without_redoing_cells(tmp_path, repo_root):
    driver, calls, work = _driver(tmp_path, repo_root)
    proc = subprocess.Popen([sys.executable, str(driver)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(_done_cells(work)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the fake training it runs
    proc.wait()
    done_before = _done_cells(work)
    assert 2 <= len(done_before) < 4, 'the kill must land mid-run'
    calls_before = len(calls.read_text().splitlines())

    result = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rerun = calls.read_text().splitlines()[calls_before:]
    assert not set(rerun) & set(done_before), 'a finished cell was computed again'
    done_after = _done_cells(work)
    assert len(done_after) == 4
    for work_dir, record in done_before.items():
        assert done_after[work_dir] == record  # finished results are left untouched
    table = (work / 'results.md').read_text()
    assert '| Random init | 10.0 (n=1) | 40.0 (n=1) |' in table, table
    assert (work / 'results.png').stat().st_size > 0
    assert json.loads((work / 'results.json').read_text())['table']['random-b']['seg']['mIoU'][
        'n'] == 1


def test_plan_order_and_commands(tmp_path):
    suite = SUITES['tiny']
    runner = BenchmarkRunner(suite, select_methods(suite), str(tmp_path), data=str(tmp_path))
    kinds = [(s.kind, s.method.key) for s in runner.plan()]
    # Random init needs no pretraining; each other method is pretrained and converted first.
    assert kinds[:len(suite.protocols)] == [('finetune', 'random')] * len(suite.protocols)
    assert kinds.index(('pretrain', 'dsc-km')) < kinds.index(('convert', 'dsc-km')) < \
        kinds.index(('finetune', 'dsc-km'))
    ft = next(s for s in runner.plan() if s.kind == 'finetune' and s.method.key == 'dsc-km')
    cmd = runner.command(ft)
    assert cmd[cmd.index('--pretrained') + 1] == runner.backbone_path(ft.method)
    assert 'randomness.seed=0' in cmd


def test_paper_dry_run_prints_distributed_commands(tmp_path):
    suite = SUITES['paper']
    runner = BenchmarkRunner(suite, select_methods(suite, ['dsc-km']), str(tmp_path),
                             data='/datasets')
    lines = runner.dry_run()
    assert lines[0] == 'export DSC_MM_DATA=/datasets'
    assert any(line.startswith('bash tools/dist_train.sh configs/pretrain/dsc-km_resnet50_8xb32'
                               '-coslr-200e_in1k.py 8 ') for line in lines)
    assert any('tools/convert_checkpoint.py' in line and 'epoch_200.pth' in line for line in lines)
    # Each protocol's own launch: VOC detection 5 seeds on 8 GPUs, COCO 8, segmentation 4
    # (VOC12aug 5 seeds, Cityscapes 1; tests/test_tools/test_benchmark.py checks every method
    # of the paper dry run).
    assert sum('tools/dist_train.sh configs/detection' in line and ' 8 ' in line
               for line in lines) == 5 + 1
    assert sum('tools/dist_train.sh configs/segmentation' in line and ' 4 ' in line
               for line in lines) == 5 + 1
    assert sum('--pretrained' in line for line in lines) == sum(p.seeds for p in suite.protocols)


def test_unknown_method_and_bad_checkpoint_spec_are_clear_errors():
    suite = SUITES['tiny']
    for bad, match in ((dict(keys=['simclr']), 'Unknown method'),
                       (dict(checkpoints=['no-equals-sign']), 'NAME=PATH')):
        try:
            select_methods(suite, **bad)
        except ValueError as exc:
            assert match in str(exc)
        else:
            raise AssertionError(f'{bad} was accepted')


def test_failed_pretraining_fails_its_cells_and_the_run_goes_on(tmp_path):
    # Steps stand in for tools/train.py: the pretraining fails, a fine-tuning records its cell.
    suite = Suite('fake', methods=(Method('random', 'Random init'),
                                   Method('dense', 'Dense', 'configs/pretrain/densecl_resnet18_'
                                                            'tiny_scenes.py')),
                  protocols=(Protocol('seg', 'Seg', 'seg.py', {'mIoU': 'mIoU'}),),
                  data_env='UNUSED', default_methods=('random', 'dense'))
    runner = BenchmarkRunner(suite, suite.methods, str(tmp_path / 'bench'), log=lambda line: None)
    ran = []

    def run_step(step, launcher=None, rank=0):
        ran.append((step.kind, step.method.key))
        if step.kind == 'finetune':
            runner._record_done(step, {'mIoU': 40.0}, seconds=None)
        return step.kind == 'finetune'

    runner.run_step = run_step
    cells = {c['method']: c for c in runner.run()}
    # The failed method is neither converted nor fine-tuned; its cell says why.
    assert ran == [('finetune', 'random'), ('pretrain', 'dense')]
    assert cells['random']['status'] == 'done'
    assert (cells['dense']['status'], cells['dense']['reason']) == (
        'failed', 'its pretraining or conversion failed')
    assert len(cells) == 2


def _one_protocol_suite():
    return Suite('fake', methods=(Method('random', 'Random init'),),
                 protocols=(Protocol('seg', 'Seg', 'seg.py', {'mIoU': 'mIoU'}),),
                 data_env='UNUSED', default_methods=('random',))


@pytest.mark.parametrize('content', [b'{"method": "random", "protocol": "se',  # cut by a kill
                                     b'{"status": "done"}',  # partial: no metrics, no names
                                     b'\xff\xfe not json'])
def test_corrupt_or_partial_cell_is_named_moved_aside_and_recomputed(tmp_path, content):
    from dsc_mm.benchmark.report import write_report
    suite = _one_protocol_suite()
    lines = []
    runner = BenchmarkRunner(suite, suite.methods, str(tmp_path / 'bench'), log=lines.append)
    # A finished fine-tuning run (what --collect reads) and a broken cell file for it.
    vis = tmp_path / 'bench' / 'finetune' / 'random' / 'seg' / 'seed0' / 't0' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(json.dumps({'mIoU': 41.5, 'step': 1}) + '\n')
    cell = tmp_path / 'bench' / 'cells' / 'random__seg__seed0.json'
    cell.parent.mkdir()
    cell.write_bytes(content)

    step = runner.plan()[0]
    assert not runner.is_done(step)  # tools/benchmark.py would run the cell again
    aside = cell.with_name(cell.name + '.corrupt')
    assert aside.read_bytes() == content and not cell.exists()
    assert len(lines) == 1 and lines[0].startswith(f'[benchmark] cell {cell} is corrupt or '
                                                   f'partial (') and \
        lines[0].endswith(f'; it was moved to {aside} and the cell will be computed again.')

    cell.write_bytes(content)  # broken again: --collect records it anew, keeps both copies
    assert [c['metrics'] for c in runner.collect()] == [{'mIoU': 41.5}]
    assert cell.with_name(cell.name + '.corrupt.1').read_bytes() == content
    assert aside.read_bytes() == content
    assert '| Random init | 41.5 (n=1) |' in write_report(runner, quiet=True)


def test_checkpoint_row_names_become_safe_path_segments(tmp_path):
    suite = SUITES['tiny']
    methods = select_methods(suite, ['random'], ['../../x=a.pth', 'My DSC/v2=b.pth'])
    assert [(m.key, m.title) for m in methods[1:]] == [('x', '../../x'), ('my-dsc-v2', 'My DSC/v2')]
    runner = BenchmarkRunner(suite, methods, str(tmp_path / 'bench'), data=str(tmp_path))
    work = str(tmp_path / 'bench') + os.sep
    for method in methods[1:]:
        for path in (runner.pretrain_dir(method), runner.backbone_path(method),
                     runner.cell_path(method, suite.protocols[0], 0)):
            assert os.path.normpath(path).startswith(work), path
    for bad, match in (('..=a.pth', 'has no letter or digit'),
                       ('DSC KM=a.pth', "gives the key 'dsc-km', which another row")):
        with pytest.raises(ValueError, match=match):
            select_methods(suite, None, [bad])


# A real tiny fine-tuning (FCN R18-D8 on generated 64 px scenes, 64 px crops, batch 2),
# 6 iterations with a checkpoint every 2, evaluated on 2 images at the end.
RESUME_DRIVER = '''
import sys
sys.path.insert(0, {repo!r})
from dsc_mm.benchmark import BenchmarkRunner, Method, Protocol, Suite
options = ('train_cfg.max_iters=6', 'train_cfg.val_interval=6', 'param_scheduler.0.end=6',
           'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
           'train_dataloader.dataset.pipeline.2.scale=(256,64)',
           'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
           'model.data_preprocessor.size=(64,64)',
           'val_dataloader.dataset.pipeline.1.scale=(256,64)', 'val_dataloader.dataset.indices=2')
suite = Suite('resume', methods=(Method('random', 'Random init'),),
              protocols=(Protocol('voc-seg', 'Scenes seg',
                                  'configs/segmentation/fcn_r18-d8-plain_tiny_scenes-voc.py',
                                  {{'mIoU': 'mIoU'}}, options=options),),
              data_env='DSC_MM_SCENES', default_methods=('random',))
runner = BenchmarkRunner(suite, suite.methods, {work!r}, data={data!r})
cells = runner.run()
assert cells and cells[0]['status'] == 'done', cells
'''


def test_killed_fine_tuning_resumes_from_its_latest_checkpoint(tmp_path, repo_root, scenes_64):
    work = tmp_path / 'bench'
    driver = tmp_path / 'driver.py'
    driver.write_text(RESUME_DRIVER.format(repo=str(repo_root), work=str(work),
                                           data=str(scenes_64)))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    run_dir = work / 'finetune' / 'random' / 'voc-seg' / 'seed0'
    last = run_dir / 'last_checkpoint'
    proc = subprocess.Popen([sys.executable, str(driver)], start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if last.is_file() and last.read_text().strip():
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and tools/train.py under it
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the fine-tuning finished before the kill'
    killed_at = int(last.read_text().strip().rsplit('iter_', 1)[1].split('.')[0])
    assert 2 <= killed_at < 6 and not (work / 'cells').exists()

    result = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (work / 'logs' / 'finetune_Random_init_x_voc-seg_seed_0.log').read_text()
    second = log.split('\n$ ')[-1]  # the command of the second start and its output
    assert ' --resume' in second.split('\n', 1)[0]  # the runner asked for the resume
    assert f'resumed epoch: 0, iter: {killed_at}' in second
    # Only the iterations after the checkpoint were trained again.
    trained = [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/6\]', second)]
    assert trained == list(range(killed_at + 1, 7)), trained
    cell = json.loads((work / 'cells' / 'random__voc-seg__seed0.json').read_text())
    assert cell['status'] == 'done' and isinstance(cell['metrics']['mIoU'], float)
