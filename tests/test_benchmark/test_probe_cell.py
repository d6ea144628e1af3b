"""The dense linear probe is a column of the tiny and mini-real suites, and one tiny cell runs
end to end through the benchmark (convert -> tools/train.py -> cell JSON) with the backbone
bit-identical to the pretrained file at the end of training."""
import dataclasses

import pytest
import torch

from dsc_mm.benchmark import BenchmarkRunner, Method, Suite
from dsc_mm.benchmark.suites import SUITES, select_protocols

PROBE_ITERS = 6


def _probe(suite_name, key):
    return next(p for p in SUITES[suite_name].protocols if p.key == key)


def test_probe_columns_are_in_the_suites(repo_root):
    for suite, keys in (('tiny', ['voc-probe']), ('mini-real', ['voc-probe', 'street-probe'])):
        for key in keys:
            protocol = _probe(suite, key)
            assert protocol.config.startswith('configs/probe/linear-probe_r18-d8-frozen_tiny_')
            assert (repo_root / protocol.config).is_file()
            assert protocol.metrics == {'mIoU': 'mIoU'}
    assert any(p.key == 'in1k-linear' for p in SUITES['paper'].protocols)
    # Detection fine-tuning scored 0.0 AP for every row on 2 CPU cores: not in the default.
    assert not any(p.key.endswith('-det') for p in SUITES['mini-real'].protocols)
    assert {p.key for p in SUITES['mini-real-finetune'].protocols} == {
        'voc-det', 'coco-det', 'voc-seg', 'street-seg'}


@pytest.fixture(scope='module')
def tiny_scenes(tmp_path_factory):
    from dsc_mm.datasets.scenes import generate_scenes
    return generate_scenes(tmp_path_factory.mktemp('data') / 'scenes', num_train=3, num_val=2,
                           num_unlabeled=0, size=64, seed=0)


def test_tiny_probe_cell_runs_and_keeps_the_backbone_frozen(tiny_scenes, tmp_path):
    from torchvision.models import resnet18

    from dsc_mm.utils import load_checkpoint_file
    torch.manual_seed(0)
    state = {k: v for k, v in resnet18().state_dict().items() if not k.startswith('fc.')}
    for key, value in state.items():
        if value.is_floating_point():
            value.uniform_(0.5, 1.5) if 'running_var' in key else value.normal_(std=0.1)
    ckpt = tmp_path / 'r18.pth'
    torch.save(state, ckpt)

    tiny_probe = _probe('tiny', 'voc-probe')
    protocol = dataclasses.replace(tiny_probe, seeds=1, options=(
        f'train_cfg.max_iters={PROBE_ITERS}', f'train_cfg.val_interval={PROBE_ITERS}',
        f'default_hooks.checkpoint.interval={PROBE_ITERS}'))
    suite = Suite('probe-test', methods=(), protocols=(protocol, ), data_env='DSC_MM_SCENES')
    method = Method('mine', 'Mine', checkpoint=str(ckpt))
    runner = BenchmarkRunner(suite, [method], str(tmp_path / 'bench'), data=str(tiny_scenes),
                             log=lambda line: None)
    cells = runner.run()
    assert [c['status'] for c in cells] == ['done'], cells
    assert 0 <= cells[0]['metrics']['mIoU'] <= 100

    work_dir = runner.finetune_dir(method, protocol, 0)
    trained = load_checkpoint_file(f'{work_dir}/iter_{PROBE_ITERS}.pth')['state_dict']
    for key, value in state.items():
        assert torch.equal(trained[f'backbone.{key}'], value), key
    # The classifier did train (its BN statistics moved away from their initial 0 / 1).
    assert not torch.equal(trained['decode_head.norm.running_mean'],
                           torch.zeros_like(trained['decode_head.norm.running_mean']))


def test_protocols_option_selects_columns(repo_root, capsys):
    import runpy
    benchmark = runpy.run_path(str(repo_root / 'tools' / 'benchmark.py'), run_name='benchmark')
    benchmark['main'](['--suite', 'mini-real', '--methods', 'random', '--protocols',
                       'street-probe', '--data', '/data', '--dry-run'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'export DSC_MM_DATA=/data'
    assert len(lines) == 2 and 'linear-probe_r18-d8-frozen_tiny_camvid.py' in lines[1]
    with pytest.raises(SystemExit, match=r"unknown protocol\(s\) \['voc-det'\] for suite "
                                         r"mini-real; choose from \['street-probe', 'voc-probe'\]"):
        benchmark['main'](['--suite', 'mini-real', '--protocols', 'voc-det', '--dry-run'])
    # Without --protocols: the suite's defaults, i.e. the CamVid probe only (coco128-VOC's
    # probe predicts background for every row); --protocols voc-probe still reaches it.
    benchmark['main'](['--suite', 'mini-real', '--methods', 'random', '--data', '/data',
                       '--dry-run'])
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 1 and 'linear-probe_r18-d8-frozen_tiny_camvid.py' in lines[0]
    benchmark['main'](['--suite', 'mini-real', '--methods', 'random', '--protocols', 'voc-probe',
                       '--data', '/data', '--dry-run'])
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 1 and 'linear-probe_r18-d8-frozen_tiny_coco128-voc.py' in lines[0]
    # The demo (tiny) leaves the FCN fine-tuning column out for its 15-minute budget.
    assert [p.key for p in select_protocols(SUITES['tiny']).protocols] == ['coco-det',
                                                                          'voc-probe']
    # A suite without defaults runs every protocol.
    assert select_protocols(SUITES['paper']) is SUITES['paper']
