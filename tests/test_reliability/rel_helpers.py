"""Helpers of the reliability tests: generated scenes, tools run in or out of process, toy runs."""
import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS, MODELS
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The tiny DSC-KM pretraining used by the tests that run tools/train.py.
TINY_DSC = 'tests/test_reliability/configs/dsc-km_resnet18_tiny_reliability.py'


def tool_env(**extra) -> dict:
    """Environment of a tool subprocess: CPU only, one thread (deterministic, shares 2 cores)."""
    return dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
                PYTHONDONTWRITEBYTECODE='1', **extra)


def run_tool(args, timeout=300, **env) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root (e.g. ``['tools/train.py', CONFIG, ...]``)."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, env=tool_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (its ``main(argv)`` runs in this process)."""
    spec = importlib.util.spec_from_file_location(f'dsc_mm_tool_{name}',
                                                  REPO_ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exit_message(main, argv) -> str:
    """Run a tool's ``main(argv)`` in process; return the message it exits with."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    return str(info.value.code)


@pytest.fixture(scope='session')
def scenes(scenes_64) -> Path:
    """The shared 64 px scenes (tests/conftest.py); the runs read its 12 ``unlabeled`` images."""
    return scenes_64


class BackgroundRun:
    """A ``tools/train.py`` process started now; :meth:`finished` waits for it (once)."""

    def __init__(self, args, work_dir: Path, log: Path):
        self.work_dir, self.log = work_dir, log
        with open(log, 'w') as out:
            self.proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO_ROOT,
                                         env=tool_env(), stdout=out, stderr=subprocess.STDOUT)

    def finished(self, timeout: float = 600) -> Path:
        """The work dir of the completed run (fails the test with its log tail otherwise)."""
        self.proc.wait(timeout=timeout)
        assert self.proc.returncode == 0, self.log.read_text()[-3000:]
        return self.work_dir


#: Iterations of the shared tiny DSC-KM run (a checkpoint every 2, the config's interval).
TINY_DSC_ITERS = 10


@pytest.fixture(scope='session')
def tiny_dsc_run(scenes, tmp_path_factory):
    """The uninterrupted 10-iteration tiny DSC-KM run on ``scenes`` (``iter_2`` ... ``iter_10``),
    started in the background at first use: the reference of the resume and divergence tests
    (``.finished()`` waits for it), while they start their own runs alongside."""
    root = tmp_path_factory.mktemp('tiny_dsc')
    run = BackgroundRun(['tools/train.py', TINY_DSC, '--work-dir', root / 'work',
                         '--cfg-options', f'train_dataloader.dataset.data_root={scenes}',
                         f'train_cfg.max_iters={TINY_DSC_ITERS}'], root / 'work', root / 'log')
    yield run
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait()


class _RunsCode:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.fixture
def evil_checkpoint(tmp_path):
    """``(path, marker)``: a checkpoint that creates ``marker`` if it is ever unpickled."""
    marker = tmp_path / 'code_was_executed'
    path = tmp_path / 'evil.pth'
    state = {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)}
    torch.save({'state_dict': state, 'meta': {'payload': _RunsCode(marker)}}, path)
    assert not marker.exists()
    return path, marker


# ----------------------------------------------------------------- toy mmengine runs
class ToyDataset(Dataset):
    """Samples drawn from numpy's global generator, as augmentations do."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(inputs=torch.from_numpy(np.random.rand(2).astype(np.float32)))


@MODELS.register_module(name='RelToyModel', force=True)
class ToyModel(BaseModel):
    """A linear model whose loss draws from torch's global generator every step (like
    shuffle-BN or an RPN sampler). At step ``nan_at`` (1-based) its loss becomes NaN; at step
    ``nan_grad_at`` its loss stays finite but its gradient is NaN (``sqrt`` at 0, as a norm of
    a zero vector gives), so the step makes the weights and the momentum NaN. At step
    ``empty_term_at`` it adds a term ``loss_empty``, the mean of an empty selection: NaN, without
    a gradient, so the step itself stays finite."""

    def __init__(self, nan_at=None, nan_grad_at=None, empty_term_at=None):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.nan_at, self.nan_grad_at = nan_at, nan_grad_at
        self.empty_term_at = empty_term_at
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        noise = torch.rand(inputs.shape[0], 1)
        if mode == 'predict':
            return list(self.linear(inputs) - noise)
        loss = ((self.linear(inputs) - noise) ** 2).mean()
        self.steps += 1
        if self.nan_at is not None and int(self.steps) == self.nan_at:
            loss = loss * float('nan')
        if self.nan_grad_at is not None and int(self.steps) == self.nan_grad_at:
            loss = loss + torch.sqrt(self.linear.weight.sum() * 0)  # + 0, gradient NaN
        if self.empty_term_at is not None and int(self.steps) == self.empty_term_at:
            return dict(loss_toy=loss, loss_empty=inputs.new_zeros(0).mean())
        return dict(loss_toy=loss)


def toy_runner(work_dir, max_iters, hooks=(), interval=2, resume=False, nan_at=None,
               val=False, lr=0.05, nan_grad_at=None, empty_term_at=None,
               **runner_kwargs) -> Runner:
    """A Runner on :class:`ToyModel`, checkpoint every ``interval`` iterations.

    ``runner_kwargs`` go to :class:`Runner` (``launcher``, ``env_cfg``, ``randomness``...).
    """
    loader = dict(dataset=ToyDataset(), sampler=dict(type='InfiniteSampler', shuffle=True),
                  batch_size=2, num_workers=0, collate_fn=dict(type='default_collate'))
    val_kwargs = {}
    if val:
        val_kwargs = dict(val_dataloader=dict(loader, sampler=dict(type='DefaultSampler',
                                                                   shuffle=True)),
                          val_cfg=dict(type='ValLoop'),
                          val_evaluator=dict(type='ToyRandomMetric'))
    return Runner(
        model=dict(type='RelToyModel', nan_at=nan_at, nan_grad_at=nan_grad_at,  # after seeding
                   empty_term_at=empty_term_at),
        work_dir=str(work_dir),
        train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters,
                       val_interval=interval if val else max_iters + 1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=interval,
                                           by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type=h) for h in hooks],
        randomness=runner_kwargs.pop('randomness', dict(seed=0)),
        resume=resume,
        # Runner singletons are per name
        experiment_name=runner_kwargs.pop('experiment_name', f'rel-{uuid.uuid4().hex[:8]}'),
        default_scope='mmengine',
        **val_kwargs, **runner_kwargs)


@METRICS.register_module(name='ToyRandomMetric', force=True)
class ToyRandomMetric(BaseMetric):
    """Counts validation samples (validation itself draws from the generators)."""

    def process(self, data_batch, data_samples):
        self.results.append(len(data_batch['inputs']))

    def compute_metrics(self, results):
        return dict(samples=float(sum(results)))
