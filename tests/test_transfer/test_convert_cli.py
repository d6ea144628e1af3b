"""tools/convert_checkpoint.py: wrong inputs give one clear sentence, a non-zero exit, no DST."""
import os
import random
import subprocess
import sys

import pytest
import torch
import torchvision


@pytest.fixture(scope='module')
def tool(load_script):
    return load_script('tools/convert_checkpoint.py')


@pytest.fixture(scope='module')
def r18_backbone(tmp_path_factory):
    """A ResNet-18 backbone saved with torchvision keys."""
    path = tmp_path_factory.mktemp('r18') / 'r18.pth'
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


class _WritesMarker:
    """Unpickling this creates a file: the code a crafted checkpoint would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _crafted(tmp_path, marker):
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {'conv1.weight': _WritesMarker(marker)}}, path)
    return path


def _detector(tmp_path):
    path = tmp_path / 'faster_rcnn.pth'
    t = torch.zeros(1)
    torch.save({'meta': {}, 'state_dict': {
        'backbone.conv1.weight': t, 'rpn_head.rpn_conv.weight': t,
        'roi_head.bbox_head.fc_cls.weight': t}}, path)
    return path


def _no_backbone(tmp_path):
    path = tmp_path / 'neck_only.pth'
    torch.save({'state_dict': {'neck.mlp.0.weight': torch.zeros(2, 2),
                               'head.fc.weight': torch.zeros(2)}}, path)
    return path


def _text(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('hello world\nthese are notes, not weights\n')
    return path


def _random_bytes(tmp_path):
    path = tmp_path / 'noise.pth'
    path.write_bytes(random.Random(0).randbytes(4096))  # fixed: the same bytes every run
    return path


def _truncated(tmp_path, r18_backbone):
    path = tmp_path / 'truncated.pth'
    data = r18_backbone.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def _wrong_shape(tmp_path, r18_backbone):
    state_dict = torch.load(r18_backbone, weights_only=True)
    state_dict['conv1.weight'] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / 'wrong_shape.pth'
    torch.save(state_dict, path)
    return path


def _missing_shortcut(tmp_path, r18_backbone):
    state_dict = torch.load(r18_backbone, weights_only=True)
    for key in [k for k in state_dict if k.startswith('layer3.0.downsample.')]:
        del state_dict[key]
    path = tmp_path / 'missing.pth'
    torch.save(state_dict, path)
    return path


# (make the source, extra CLI args, words the one-sentence error must contain)
CASES = {
    'detector': (lambda tmp, r18: _detector(tmp), [], ['detector', 'roi_head.', 'rpn_head.',
                                                      'pretraining checkpoint']),
    'no_backbone': (lambda tmp, r18: _no_backbone(tmp), [], ['no ResNet backbone', 'neck',
                                                            'backbone.*']),
    'resnet18_into_resnet50': (lambda tmp, r18: r18, ['--depth', '50'],
                               ['ResNet-18', 'ResNet-50']),
    'text': (lambda tmp, r18: _text(tmp), [], ['not a readable torch checkpoint']),
    'random_bytes': (lambda tmp, r18: _random_bytes(tmp), [], ['not a readable torch checkpoint']),
    'truncated': (lambda tmp, r18: _truncated(tmp, r18), [], ['not a readable torch checkpoint']),
    'wrong_shape': (lambda tmp, r18: _wrong_shape(tmp, r18), [],
                    ['1 key with the wrong shape', 'conv1.weight', '(64, 3, 3, 3)']),
    'missing_keys': (lambda tmp, r18: _missing_shortcut(tmp, r18), [],
                     ['missing', 'layer3.0.downsample.0.weight']),
    'missing_file': (lambda tmp, r18: tmp / 'does_not_exist.pth', [], ['does not exist']),
    'directory': (lambda tmp, r18: tmp, [], ['is a directory', 'iter_N.pth']),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_wrong_input_is_one_sentence_and_no_output(case, tool, tmp_path, r18_backbone, capsys):
    make, extra, words = CASES[case]
    src = make(tmp_path, r18_backbone)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    code = tool.main([str(src), str(out_dir / 'dst.pth'), '--to', 'mmdet', *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith('convert_checkpoint: error: ') and '\n' not in err, err
    assert str(src) in err
    for word in words:
        assert word in err, (word, err)
    assert list(out_dir.iterdir()) == []  # neither DST nor a temporary file


def test_key_encoder_of_a_plain_backbone_is_refused(tool, tmp_path, r18_backbone, capsys):
    code = tool.main([str(r18_backbone), str(tmp_path / 'k.pth'), '--to', 'torchvision',
                      '--encoder', 'key'])
    assert code != 0 and 'has no key encoder' in capsys.readouterr().err
    assert not (tmp_path / 'k.pth').exists()


def test_detectron2_needs_a_pkl_name(tool, tmp_path, r18_backbone, capsys):
    code = tool.main([str(r18_backbone), str(tmp_path / 'd2.pth'), '--to', 'detectron2'])
    assert code != 0 and 'd2.pkl' in capsys.readouterr().err
    assert not (tmp_path / 'd2.pth').exists()


def test_success_prints_the_detectron2_settings(tool, tmp_path, r18_backbone, capsys):
    assert tool.main([str(r18_backbone), str(tmp_path / 'd2.pkl'), '--to', 'detectron2',
                      '--depth', '18']) == 0
    out = capsys.readouterr().out
    assert 'MODEL.RESNETS.DEPTH 18' in out and 'MODEL.RESNETS.RES2_OUT_CHANNELS 64' in out
    assert sorted(os.listdir(tmp_path)) == ['d2.pkl']


def test_crafted_pickle_is_refused_through_the_cli(repo_root, tmp_path, r18_backbone):
    """A checkpoint that executes code when unpickled: refused, code not run, exit status 1.

    Run as real processes (the two at once): the exit status and a traceback-free stderr are
    what a user or a script sees.
    """
    control_marker = tmp_path / 'control_marker'
    crafted = _crafted(tmp_path, control_marker)
    # Control: an unsafe load really runs the payload, so the assertion below can fail.
    torch.load(crafted, weights_only=False)['state_dict']['conv1.weight'].close()
    assert control_marker.exists()
    control_marker.unlink()

    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    runs = {name: subprocess.Popen(
        [sys.executable, 'tools/convert_checkpoint.py', str(src), str(tmp_path / f'out_{name}.pth'),
         '--to', 'mmdet', *extra], cwd=repo_root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
        for name, src, extra in (('crafted', crafted, []),
                                 ('depth', r18_backbone, ['--depth', '50']))}
    results = {name: (proc.communicate(timeout=300), proc.returncode)
               for name, proc in runs.items()}
    (_, err), code = results['crafted']
    assert code == 1 and 'Traceback' not in err, err
    assert 'refused' in err and str(crafted) in err
    assert not control_marker.exists()
    (_, err), code = results['depth']
    assert code == 1 and 'Traceback' not in err, err
    assert 'ResNet-18 backbone but the target is ResNet-50' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['crafted.pth']


def _pretraining_checkpoint(path):
    backbone = torchvision.models.resnet18(weights=None).state_dict()
    torch.save({'meta': {'iter': 200}, 'optimizer': {'state': {}, 'param_groups': []},
                'state_dict': {f'backbone.{k}': v for k, v in backbone.items()
                               if not k.startswith('fc.')}}, path)  # converts fine
    return path


@pytest.mark.parametrize('spelling', ['same', 'relative', 'hard_link'])
def test_output_equal_to_the_input_is_refused_and_the_input_kept(spelling, tool, tmp_path,
                                                                  capsys, monkeypatch):
    src = _pretraining_checkpoint(tmp_path / 'iter_200.pth')
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    dst = {'same': str(src), 'relative': './sub/../iter_200.pth', 'hard_link': 'link.pth'}[spelling]
    (tmp_path / 'sub').mkdir()
    if spelling == 'hard_link':
        os.link(src, tmp_path / 'link.pth')
    assert tool.main([str(src), dst, '--to', 'mmdet']) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'convert_checkpoint: error: The output {dst} is the input checkpoint '
                          f'{src}; ') and 'pass another output name' in err and '\n' not in err
    assert src.read_bytes() == before  # meta and optimizer are still there
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['iter_200.pth', 'sub'] + (['link.pth'] if spelling == 'hard_link' else []))
