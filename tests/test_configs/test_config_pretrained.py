"""``--pretrained`` fits every tiny downstream config: after ``apply_pretrained`` and the model's
own ``init_weights``, the backbone (and the C4 res5 head) hold exactly the file's tensors;
without it they are random."""
import pytest
import torch

from config_helpers import TINY_CONFIGS, build_model, load


@pytest.fixture(scope='module')
def resnet18_file(tmp_path_factory):
    """A torchvision-named ResNet-18 backbone with recognisable (non-default) tensors."""
    from torchvision.models import resnet18
    torch.manual_seed(0)
    state = {k: v for k, v in resnet18().state_dict().items() if not k.startswith('fc.')}
    for key, value in state.items():
        if value.is_floating_point():
            value.normal_()  # BN weights and running stats included: none keeps its default
    path = tmp_path_factory.mktemp('pretrained') / 'r18_torchvision.pth'
    torch.save(state, path)
    return path, state


# A stem tensor, a BN buffer, a stage-3 conv, and res5 (backbone, or the C4 shared head).
PROBES = ('conv1.weight', 'bn1.running_var', 'layer3.1.conv2.weight', 'layer4.1.bn2.weight')


def _module_tensors(model):
    tensors = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()}
    shared_head = getattr(getattr(model, 'roi_head', None), 'shared_head', None)
    if shared_head is not None:
        tensors.update(shared_head.state_dict())  # its res5 keys are 'layer4.*' as torchvision's
    return tensors


def _lookup(tensors, key):
    return tensors.get(f'backbone.{key}', tensors.get(key))


@pytest.mark.parametrize('path', TINY_CONFIGS, ids=lambda p: p.name)
def test_pretrained_backbone_is_loaded(path, resnet18_file, tmp_path):
    from dsc_mm.transfer import apply_pretrained
    ckpt_path, state = resnet18_file
    cfg = load(path)
    cfg.work_dir = str(tmp_path)

    random_model = build_model(cfg)
    random_model.init_weights()
    random_tensors = _module_tensors(random_model)
    for key in PROBES:
        assert not torch.equal(_lookup(random_tensors, key), state[key]), key

    apply_pretrained(cfg, str(ckpt_path))
    model = build_model(cfg)
    model.init_weights()
    tensors = _module_tensors(model)
    for key in PROBES:
        torch.testing.assert_close(_lookup(tensors, key), state[key], rtol=0, atol=0, msg=key)
