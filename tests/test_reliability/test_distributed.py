"""Two gloo processes of the tiny DSC-KM pretraining through torchrun equal one process on the
concatenated batch (first-step loss terms, and the weights and queues after the step)."""
import socket

import pytest
import torch

from dsc_mm.utils import load_checkpoint_file
from rel_helpers import REPO_ROOT, run_tool

CONFIG = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_dist.py'
TERMS = ('loss_instance', 'loss_pixel', 'loss_semantic', 'raw_instance', 'raw_pixel',
         'raw_semantic')
# Same samples, same weights: only the float summation order differs (a conv over 4 or 8
# images, a mean of 2 x 4 or of 8 values).
TOL = dict(rtol=1e-5, atol=1e-6)


# The one-process control (work1) is the session fixture dist_control (tests/conftest.py),
# shared with test_slurm_cluster.py's 2-task run: one xdist worker runs both files.
pytestmark = pytest.mark.xdist_group('dist_control')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def runs(dist_control):
    """``dist_control`` with ``work2``: the same step as 2 gloo processes under torchrun, each
    on 4 of the 8 images (``work1`` is the one-process control)."""
    root = dist_control
    two = run_tool(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                    _free_port(), 'tools/train.py', CONFIG, '--launcher', 'pytorch',
                    '--work-dir', root / 'work2', '--cfg-options',
                    f'train_dataloader.dataset.data_root={root}',
                    'train_dataloader.dataset.folders=[two]', 'train_dataloader.batch_size=4'],
                   PYTHONPATH=str(REPO_ROOT / 'tests' / 'test_reliability'))
    assert two.returncode == 0, two.stderr[-3000:]
    return root


def test_two_processes_complete_and_save_one_checkpoint(runs):
    assert sorted(p.name for p in (runs / 'work2').glob('iter_*.pth')) == ['iter_1.pth']
    # tools/train.py --launcher pytorch under torchrun: one distributed Runner of 2 processes
    # (rank 0 writes the log; the single-process run is the control).
    for work, expected in (('work2', ('pytorch', 'True', '2')), ('work1', ('none', 'False', '1'))):
        log = next((runs / work).glob('*/*.log')).read_text()
        for key, value in zip(('Distributed launcher', 'Distributed training', 'GPU number'),
                              expected):
            assert f'    {key}: {value}\n' in log, (work, key)
    state = load_checkpoint_file(str(runs / 'work2' / 'iter_1.pth'))['state_dict']
    # Both queues advanced by the GLOBAL batch (2 processes x 4 images).
    assert int(state['instance_queue.ptr']) == int(state['pixel_queue.ptr']) == 8


def test_first_step_loss_terms_equal_one_process_on_the_concatenated_batch(runs):
    ranks = [torch.load(runs / 'work2' / f'first_losses_rank{r}.pth') for r in range(2)]
    single = torch.load(runs / 'work1' / 'first_losses_rank0.pth')
    for term in TERMS:
        # Each process averages over its 4 images; equal halves make the mean of the two the
        # average over all 8. The semantic term's k-means ran on the same all-gathered pool.
        two = (ranks[0][term] + ranks[1][term]) / 2
        assert torch.allclose(two, single[term], **TOL), (term, two, single[term])
    assert not torch.allclose(ranks[0]['loss_instance'], ranks[1]['loss_instance'])


def test_weights_and_queues_after_the_step_match(runs):
    # DDP averages the gradients of the two halves: the step equals one on the whole batch.
    two = load_checkpoint_file(str(runs / 'work2' / 'iter_1.pth'))['state_dict']
    one = load_checkpoint_file(str(runs / 'work1' / 'iter_1.pth'))['state_dict']
    assert two.keys() == one.keys()
    for key in ('backbone.conv1.weight', 'neck.mlp.0.weight', 'instance_queue.queue',
                'pixel_queue.queue', 'semantic_head.centroids', 'encoder_k.module.0.conv1.weight'):
        assert torch.allclose(two[key], one[key], **TOL), key
