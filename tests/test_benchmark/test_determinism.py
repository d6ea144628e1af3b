"""Two runs of a reduced demo give bit-identical cells and checkpoints, even when the machine's
thread count and instruction set differ between them (the tiny configs pin both:
``cpu_numerics``, dsc_mm/apis/determinism.py); the first run's probe cell is checked end to end."""
import dataclasses
import warnings

import pytest
import torch
from mmengine.config import Config

from dsc_mm.apis.determinism import pin_cpu_numerics
from dsc_mm.benchmark import BenchmarkRunner, Suite
from dsc_mm.benchmark.suites import TINY
from dsc_mm.utils import load_checkpoint_file
from probe_miou import miou_of

PRETRAIN_ITERS, FINETUNE_ITERS = 3, 2


def _short(iters):
    return (f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1')


def _reduced_demo():
    """The demo's DSC-KM row on its probe column and on Mask R-CNN fine-tuning (the column
    that ``--protocols coco-det voc-probe`` adds), each a few iterations long."""
    protocols = tuple(dataclasses.replace(p, options=_short(FINETUNE_ITERS), seeds=1)
                      for p in TINY.protocols if p.key in ('coco-det', 'voc-probe'))
    method = next(m for m in TINY.methods if m.key == 'dsc-km')
    suite = dataclasses.replace(
        TINY, name='tiny-reduced', protocols=protocols, default_methods=('dsc-km', ),
        pretrain_options=(*_short(PRETRAIN_ITERS), f'param_scheduler.0.T_max={PRETRAIN_ITERS}',
                          f'param_scheduler.0.end={PRETRAIN_ITERS}',
                          'model.dense_start_iters=1', 'model.semantic_ramp=[1,2]'))
    return suite, method


def _state(path):
    return load_checkpoint_file(str(path))['state_dict']


@pytest.fixture(scope='module')
def demos(scenes_64, tmp_path_factory):
    """The reduced demo run twice, ``[(runner, cells), (runner, cells)]``: the second starts on
    another thread count and another torch kernel set, which the configs' cpu_numerics must
    bring back to the pinned values."""
    suite, method = _reduced_demo()
    root = tmp_path_factory.mktemp('demos')
    runs = []
    for name, env in (('a', {'OMP_NUM_THREADS': '1', 'ATEN_CPU_CAPABILITY': 'default'}),
                      ('b', {'OMP_NUM_THREADS': '3'})):
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.delenv('ATEN_CPU_CAPABILITY', raising=False)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            runner = BenchmarkRunner(suite, [method], str(root / name), data=str(scenes_64),
                                     log=lambda line: None)
            runs.append((runner, runner.run()))
    return runs


def test_two_reduced_demos_are_bit_identical(demos):
    suite, method = _reduced_demo()
    for _, cells in demos:
        assert [c['status'] for c in cells] == ['done'] * len(suite.protocols), cells
    (first, cells_a), (second, cells_b) = demos
    assert [c['metrics'] for c in cells_a] == [c['metrics'] for c in cells_b]
    checkpoints = [(r.pretrain_dir(method), PRETRAIN_ITERS) for r in (first, second)]
    for protocol in suite.protocols:
        checkpoints += [(r.finetune_dir(method, protocol, 0), FINETUNE_ITERS)
                        for r in (first, second)]
    for (dir_a, iters), (dir_b, _) in zip(checkpoints[::2], checkpoints[1::2]):
        state_a, state_b = _state(f'{dir_a}/iter_{iters}.pth'), _state(f'{dir_b}/iter_{iters}.pth')
        assert state_a.keys() == state_b.keys()
        differ = [k for k in state_a if not torch.equal(state_a[k], state_b[k])]
        assert not differ, f'{dir_a} and {dir_b}: {len(differ)} tensors differ ({differ[:3]})'


def test_demo_probe_cell_records_its_miou_and_keeps_the_backbone_frozen(demos):
    # The demo's dense linear probe column, end to end through the benchmark (pretrain ->
    # convert -> tools/train.py -> cell JSON): formerly test_probe_cell.py's own tiny run.
    runner, cells = demos[0]
    suite, method = _reduced_demo()
    protocol = next(p for p in suite.protocols if p.key == 'voc-probe')
    cell = next(c for c in cells if c['protocol'] == 'voc-probe')
    work_dir = runner.finetune_dir(method, protocol, 0)
    checkpoint = f'{work_dir}/iter_{FINETUNE_ITERS}.pth'
    # The recorded mIoU is that of the trained probe on the validation images, recomputed
    # here from its checkpoint with a confusion matrix (not through mmseg's IoUMetric).
    assert cell['metrics']['mIoU'] == pytest.approx(
        miou_of(work_dir, checkpoint, protocol.config), abs=0.006)
    # The backbone is bit-identical to the converted pretraining backbone it was given (the
    # pretraining moved its BN statistics away from 0 / 1, so a BN left in training mode shows).
    trained = _state(checkpoint)
    backbone = load_checkpoint_file(runner.backbone_path(method))
    assert len(backbone) > 100 and not torch.equal(backbone['bn1.running_var'],
                                                   torch.ones_like(backbone['bn1.running_var']))
    for key, value in backbone.items():
        assert torch.equal(trained[f'backbone.{key}'], value), key
    # The classifier did train (its BN statistics moved away from their initial 0 / 1).
    assert not torch.equal(trained['decode_head.norm.running_mean'],
                           torch.zeros_like(trained['decode_head.norm.running_mean']))


def test_pin_cpu_numerics_sets_threads_and_refuses_bad_values():
    before = torch.get_num_threads()
    try:
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(threads=1))))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match=r"cpu_numerics.isa must be one of \('avx2', 'avx512'\)"):
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(isa='sse'))))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['thread'\]"):
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(thread=2))))
    with pytest.raises(ValueError, match='at least 1'):
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(threads=0))))


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability().lower() not in ('avx2', 'avx512'),
                    reason='this processor runs neither AVX2 nor AVX-512 kernels')
def test_an_isa_torch_already_chose_otherwise_is_a_warning_not_an_error():
    torch.ones(4, 4) @ torch.ones(4, 4)  # kernels have run: torch's choice is made
    chosen = torch.backends.cpu.get_cpu_capability().lower()
    other = 'avx2' if chosen == 'avx512' else 'avx512'
    with pytest.warns(UserWarning, match=f"torch already runs {chosen.upper()} kernels"):
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(isa=other))))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the ISA torch runs: nothing to say
        pin_cpu_numerics(Config(dict(cpu_numerics=dict(isa=chosen))))


def test_demo_probe_column_has_three_seeds():
    probe = next(p for p in TINY.protocols if p.key == 'voc-probe')
    assert probe.key in TINY.default_protocols and probe.seeds == 3


def test_demo_configs_pin_the_numerics(repo_root):
    for config in [m.config for m in TINY.methods if m.config] + [p.config for p in TINY.protocols]:
        cfg = Config.fromfile(str(repo_root / config))
        assert cfg.cpu_numerics == dict(threads=2, isa='avx2'), config
        assert cfg.randomness.deterministic is True, config
