"""The benchmark runner: a run killed with SIGKILL and started again never redoes finished cells."""
import json
import os
import signal
import subprocess
import sys
import time

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
runner = FakeTrainRunner(suite, suite.methods, {work!r}, seeds=2)
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
    while len(_done_cells(work)) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the fake training it runs
    proc.wait()
    done_before = _done_cells(work)
    assert 3 <= len(done_before) < 8, 'the kill must land mid-run'
    calls_before = len(calls.read_text().splitlines())

    result = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rerun = calls.read_text().splitlines()[calls_before:]
    assert not set(rerun) & set(done_before), 'a finished cell was computed again'
    done_after = _done_cells(work)
    assert len(done_after) == 8
    for work_dir, record in done_before.items():
        assert done_after[work_dir] == record  # finished results are left untouched
    table = (work / 'results.md').read_text()
    assert '| Random init | 10.5 ± 0.7 (n=2) | 40.5 ± 0.7 (n=2) |' in table
    assert (work / 'results.png').stat().st_size > 0
    assert json.loads((work / 'results.json').read_text())['table']['random-b']['seg']['mIoU'][
        'n'] == 2


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
    # (tests/test_tools/test_benchmark.py checks every method of the paper dry run).
    assert sum('tools/dist_train.sh configs/detection' in line and ' 8 ' in line
               for line in lines) == 5 + 1
    assert sum('tools/dist_train.sh configs/segmentation' in line and ' 4 ' in line
               for line in lines) == 2
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
