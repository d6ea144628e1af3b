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


def _miou_of(work_dir: str, checkpoint: str, config: str) -> float:
    """mIoU (%) of ``checkpoint`` on the validation set of the config dumped in ``work_dir``:
    per-class IoU from one confusion matrix over all images (label 255 ignored), averaged over
    the classes that occur in the labels or the predictions, as mmseg's IoUMetric defines it."""
    import os.path as osp

    import numpy as np
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import dsc_mm.probes  # noqa: F401  (registers the probe)
    from dsc_mm.utils import load_checkpoint_file
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(work_dir, osp.basename(config)))
    num_classes = cfg.model.decode_head.num_classes
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        model.load_state_dict(load_checkpoint_file(checkpoint)['state_dict'])
        model.eval()
        loader = Runner.build_dataloader(cfg.val_dataloader)
        with torch.no_grad():
            for batch in loader:
                for sample in model.test_step(batch):
                    pred = sample.pred_sem_seg.data.flatten().numpy()
                    gt = sample.gt_sem_seg.data.flatten().numpy()
                    keep = gt != 255
                    confusion += np.bincount(num_classes * gt[keep] + pred[keep],
                                             minlength=num_classes ** 2).reshape(
                                                 num_classes, num_classes)
    intersect = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersect
    present = union > 0
    return float(100 * np.mean(intersect[present] / union[present]))


def test_tiny_probe_cell_runs_and_keeps_the_backbone_frozen(scenes_64, tmp_path):
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
    runner = BenchmarkRunner(suite, [method], str(tmp_path / 'bench'), data=str(scenes_64),
                             log=lambda line: None)
    cells = runner.run()
    assert [c['status'] for c in cells] == ['done'], cells

    work_dir = runner.finetune_dir(method, protocol, 0)
    # The recorded mIoU is that of the trained probe on the validation images, recomputed
    # here from its checkpoint with a confusion matrix (not through mmseg's IoUMetric).
    assert cells[0]['metrics']['mIoU'] == pytest.approx(
        _miou_of(work_dir, f'{work_dir}/iter_{PROBE_ITERS}.pth', protocol.config), abs=0.006)
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
