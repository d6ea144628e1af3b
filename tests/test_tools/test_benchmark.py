"""tools/benchmark.py: each protocol launched with its own GPU count and seed count."""
import re

import pytest


@pytest.fixture(scope='module')
def benchmark(load_script):
    return load_script('tools/benchmark.py')


PAPER_METHODS = ['random', 'mocov2', 'densecl', 'dsc-km', 'dsc-pm']


def _dry_run(benchmark, capsys, *args):
    benchmark.main(['--suite', 'paper', '--data', '/datasets', '--work-dir', '/runs/paper',
                    '--dry-run', *args])
    return capsys.readouterr().out.splitlines()


def _finetunes(lines):
    """``{(method, protocol): [(gpus, seed), ...]}`` of the fine-tuning commands."""
    runs = {}
    for line in lines:
        match = re.match(r'bash tools/dist_train\.sh configs/(detection|segmentation)/\S+ (\d+) '
                         r'--work-dir /runs/paper/finetune/(\S+)/(\S+)/seed(\d+) ', line)
        if match:
            _, gpus, method, protocol, seed = match.groups()
            assert f'randomness.seed={seed}' in line
            runs.setdefault((method, protocol), []).append((int(gpus), int(seed)))
    return runs


def test_paper_dry_run_launches_each_protocol_its_own_way(benchmark, capsys):
    runs = _finetunes(_dry_run(benchmark, capsys))
    assert {m for m, _ in runs} == set(PAPER_METHODS)
    for method in PAPER_METHODS:
        # Segmentation on 4 GPUs (mmseg's 4 x 4 and 4 x 2), detection on 8 (8 x 2).
        assert runs[method, 'cityscapes-seg'] == [(4, 0)]
        assert runs[method, 'coco-det'] == [(8, 0)]
        # VOC detection and VOC12aug segmentation: the mean of 5 runs, as DenseCL reports them.
        assert runs[method, 'voc-det'] == [(8, seed) for seed in range(5)]
        assert runs[method, 'voc-seg'] == [(4, seed) for seed in range(5)]


def test_seeds_option_overrides_every_protocol(benchmark, capsys):
    runs = _finetunes(_dry_run(benchmark, capsys, '--methods', 'dsc-km', '--seeds', '2'))
    assert runs == {('dsc-km', p): [(g, 0), (g, 1)] for p, g in
                    (('voc-det', 8), ('coco-det', 8), ('voc-seg', 4), ('cityscapes-seg', 4))}


def test_gpus_option_is_the_pretraining_launch(benchmark, capsys):
    lines = _dry_run(benchmark, capsys, '--methods', 'dsc-km', '--gpus', '16')
    assert any(line.startswith('bash tools/dist_train.sh configs/pretrain/dsc-km_resnet50')
               and ' 16 ' in line for line in lines)
    assert set(g for runs in _finetunes(lines).values() for g, _ in runs) == {4, 8}


def test_help_documents_seeds_and_gpus(benchmark, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert "each protocol's own: 5 for paper VOC detection" in text
    assert 'segmentation 4' in text
