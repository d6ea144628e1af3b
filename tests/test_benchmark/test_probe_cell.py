"""The dense linear probe is a column of the tiny and mini-real suites (its tiny cell runs end to
end in test_determinism.py::test_demo_probe_cell_records_its_miou_and_keeps_the_backbone_frozen,
on the reduced demo's first run)."""
import pytest

from dsc_mm.benchmark.suites import SUITES, select_protocols


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
    # The demo (tiny) leaves the fine-tuning columns out for its 15-minute budget.
    assert [p.key for p in select_protocols(SUITES['tiny']).protocols] == ['voc-probe']
    assert [p.key for p in select_protocols(SUITES['tiny'], ['coco-det', 'voc-probe']).protocols
            ] == ['coco-det', 'voc-probe']
    # A suite without defaults runs every protocol.
    assert select_protocols(SUITES['paper']) is SUITES['paper']
