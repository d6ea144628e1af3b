"""Run a suite: pretrain -> convert -> fine-tune -> evaluate for every cell, resumably.

Layout of ``work_dir`` (also what ``--collect`` reads for runs made elsewhere)::

    pretrain/<method>/            tools/train.py work dir of the pretraining run
    pretrain/<method>/backbone.pth   its converted backbone (torchvision keys)
    finetune/<method>/<protocol>/seed<k>/   tools/train.py work dir of the fine-tuning run
    cells/<method>__<protocol>__seed<k>.json  the cell's result (written last, atomically)
    logs/                          the output of every command
    results.md, results.json, results.png

A killed run started again skips every cell whose JSON says ``done``, reuses finished
pretraining runs and resumes unfinished ones from their latest checkpoint.
"""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from mmengine.config import Config, DictAction

from .results import final_metrics, read_cell, write_json_atomic
from .suites import Method, Protocol, Suite

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# First guesses of a step's duration (s) on 2 CPU cores, replaced by measurements as steps finish.
GUESS_SECONDS = {'pretrain': 240., 'convert': 5., 'finetune': 120.}
ITER_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?loss: ([0-9.naninf]+)')


@dataclass
class Step:
    """One command of the plan."""
    kind: str  # 'pretrain' | 'convert' | 'finetune'
    method: Method
    protocol: Optional[Protocol] = None
    seed: int = 0

    @property
    def name(self) -> str:
        where = f' x {self.protocol.key} seed {self.seed}' if self.protocol else ''
        return f'{self.kind} {self.method.title}{where}'


def final_checkpoint_name(config: str, options: Sequence[str]) -> str:
    """``iter_N.pth`` / ``epoch_N.pth``: what a completed run of ``config`` writes last."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    if options:
        cfg.merge_from_dict(_parse_options(options))
    loop = cfg.train_cfg
    if 'max_iters' in loop:
        return f"iter_{loop['max_iters']}.pth"
    return f"epoch_{loop['max_epochs']}.pth"


def _parse_options(options: Sequence[str]) -> dict:
    """``['a.b=1', ...]`` -> the dict mmengine's ``--cfg-options`` would produce."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o', *options]).o


class BenchmarkRunner:
    """Plan and run the cells of a suite.

    Args:
        suite: What to run.
        methods: The rows (see :func:`dsc_mm.benchmark.suites.select_methods`).
        work_dir: Where everything is written.
        data: Data root handed to the configs through ``suite.data_env``.
        seeds: Fine-tuning seeds (0..seeds-1) of every cell; None: each protocol's ``seeds``.
        gpus: Processes per pretraining run (default ``suite.gpus``); fine-tuning runs use
            their protocol's ``gpus``. More than 1 launches ``tools/dist_train.sh``.
        log: Where progress lines go.
        pretrain_options: ``--cfg-options`` added after the suite's to every pretraining run.
        finetune_options: ``--cfg-options`` added last to every fine-tuning run (after the
            protocol's own, so that they win).
    """

    def __init__(self, suite: Suite, methods: Sequence[Method], work_dir: str,
                 data: Optional[str] = None, seeds: Optional[int] = None,
                 gpus: Optional[int] = None, log: Callable[[str], None] = print,
                 pretrain_options: Sequence[str] = (), finetune_options: Sequence[str] = ()):
        if seeds is not None and seeds < 1:
            raise ValueError(f'--seeds must be at least 1, got {seeds}.')
        self.suite, self.methods, self.seeds = suite, tuple(methods), seeds
        self.work_dir = osp.abspath(work_dir)
        self.data = osp.abspath(data) if data else None
        self.gpus = gpus or suite.gpus
        self.log = log
        self.pretrain_options = (*suite.pretrain_options, *pretrain_options)
        self.finetune_options = tuple(finetune_options)
        self.durations = {kind: [] for kind in GUESS_SECONDS}

    def seeds_of(self, protocol: Protocol) -> int:
        """Fine-tuning runs per cell of ``protocol``: ``--seeds`` if given, else its own."""
        return self.seeds or protocol.seeds

    # ----------------------------------------------------------------- paths
    def pretrain_dir(self, method: Method) -> str:
        return osp.join(self.work_dir, 'pretrain', method.key)

    def pretrain_checkpoint(self, method: Method) -> str:
        """The checkpoint the convert step reads: the user's, else the pretraining run's last."""
        return method.checkpoint or osp.join(
            self.pretrain_dir(method),
            final_checkpoint_name(method.config, self.pretrain_options))

    def backbone_path(self, method: Method) -> str:
        return osp.join(self.pretrain_dir(method), 'backbone.pth')

    def finetune_dir(self, method: Method, protocol: Protocol, seed: int) -> str:
        return osp.join(self.work_dir, 'finetune', method.key, protocol.key, f'seed{seed}')

    def cell_path(self, method: Method, protocol: Protocol, seed: int) -> str:
        return osp.join(self.work_dir, 'cells', f'{method.key}__{protocol.key}__seed{seed}.json')

    def read_cell(self, method: Method, protocol: Protocol, seed: int) -> Optional[dict]:
        """The cell's record, or None; a corrupt or partial file is moved aside and logged."""
        cell, message = read_cell(self.cell_path(method, protocol, seed),
                                  dict(method=method.key, protocol=protocol.key, seed=seed),
                                  list(protocol.metrics))
        if message:
            self.log(f'[benchmark] {message}')
        return cell

    # ------------------------------------------------------------------ plan
    def plan(self) -> List[Step]:
        """Every step of the suite in order (finished ones included)."""
        steps = []
        for method in self.methods:
            if method.config:
                steps.append(Step('pretrain', method))
            if not method.is_random:
                steps.append(Step('convert', method))
            for protocol in self.suite.protocols:
                steps += [Step('finetune', method, protocol, seed)
                          for seed in range(self.seeds_of(protocol))]
        return steps

    def is_done(self, step: Step) -> bool:
        if step.kind == 'pretrain':
            return osp.isfile(self.pretrain_checkpoint(step.method))
        if step.kind == 'convert':
            return osp.isfile(self.backbone_path(step.method))
        cell = self.read_cell(step.method, step.protocol, step.seed)
        return bool(cell) and cell['status'] == 'done'

    def gpus_of(self, step: Step) -> int:
        """Processes of a step: the pretraining launch, a protocol's own, 1 for a conversion."""
        if step.kind == 'pretrain':
            return self.gpus
        return step.protocol.gpus if step.kind == 'finetune' else 1

    def command(self, step: Step, launcher: Optional[str] = None) -> List[str]:
        """The shell command of a pretraining or fine-tuning step.

        Args:
            step: A ``pretrain`` or ``finetune`` step.
            launcher: None: this machine (``tools/dist_train.sh`` for more than 1 process);
                ``'slurm'``: one process of a Slurm job's tasks (``tools/train.py --launcher
                slurm``, mmengine reads Slurm's variables); ``'none'``: one plain process.
        """
        gpus = self.gpus_of(step)
        if step.kind == 'pretrain':
            config, work_dir = step.method.config, self.pretrain_dir(step.method)
            options = list(self.pretrain_options)
            extra = []
        else:
            config = step.protocol.config
            work_dir = self.finetune_dir(step.method, step.protocol, step.seed)
            options = [*self.suite.finetune_options, *step.protocol.options,
                       *self.finetune_options, f'randomness.seed={step.seed}']
            extra = [] if step.method.is_random else ['--pretrained', self.backbone_path(step.method)]
        if launcher is None and gpus > 1:
            cmd = ['bash', 'tools/dist_train.sh', config, str(gpus)]
        else:
            cmd = [sys.executable, 'tools/train.py', config]
            if launcher == 'slurm':
                cmd += ['--launcher', 'slurm']
        cmd += ['--work-dir', work_dir, *extra]
        # Continue an interrupted run from its latest checkpoint instead of starting over.
        if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
            cmd.append('--resume')
        if options:
            cmd += ['--cfg-options', *options]
        return cmd

    def dry_run(self) -> List[str]:
        """The commands a cluster user runs, one per line (nothing is executed)."""
        lines = []
        if self.data:
            lines.append(f'export {self.suite.data_env}={shlex.quote(self.data)}')
        for step in self.plan():
            if step.kind == 'convert':
                lines.append(shlex.join([
                    'python', 'tools/convert_checkpoint.py', self.pretrain_checkpoint(step.method),
                    self.backbone_path(step.method), '--to', 'torchvision']))
            else:
                cmd = self.command(step)
                if cmd[0] == sys.executable:
                    cmd[0] = 'python'
                lines.append(shlex.join(cmd))
        return lines

    # ------------------------------------------------------------------- run
    def prepare_data(self) -> None:
        """Generate the tiny suite's scenes if missing; check that other data roots exist."""
        if self.suite.name == 'tiny':
            from ..datasets.scenes import generate_scenes
            self.log(f'[benchmark] scenes in {self.data} (generated if missing or outdated)')
            generate_scenes(self.data)  # a no-op when the same scenes are already there
        elif self.data and not osp.isdir(self.data):
            raise FileNotFoundError(f'Data root {self.data} does not exist; pass --data with '
                                    f'the folder your {self.suite.name} configs read.')

    def run(self, on_cell_done: Callable[[], None] = lambda: None) -> List[dict]:
        """Run every unfinished step; returns all cell records (done and failed)."""
        steps = self.plan()
        todo = [s for s in steps if not self.is_done(s)]
        skipped = len(steps) - len(todo)
        self.log(f'[benchmark] suite {self.suite.name}: {len(steps)} steps, {skipped} already '
                 f'done, {len(todo)} to run; work dir {self.work_dir}')
        start = time.time()
        failed_methods = set()
        for i, step in enumerate(todo):
            eta = sum(self._guess(s.kind) for s in todo[i:])
            self.log(f'[benchmark] ({i + 1}/{len(todo)}) {step.name}  '
                     f'elapsed {_hms(time.time() - start)}, ETA ~{_hms(eta)}')
            if step.method.key in failed_methods and step.kind != 'pretrain':
                # A conversion has no cell to record; the method's cells are recorded failed.
                if step.kind == 'finetune':
                    self._record_failure(step, 'its pretraining or conversion failed')
                continue
            t0 = time.time()
            ok = self.run_step(step)
            self.durations[step.kind].append(time.time() - t0)
            if not ok and step.kind in ('pretrain', 'convert'):
                failed_methods.add(step.method.key)
            if step.kind == 'finetune':
                on_cell_done()
        self.log(f'[benchmark] finished in {_hms(time.time() - start)}')
        return self.cells()

    def cells(self) -> List[dict]:
        """All cell records on disk for this suite's methods and protocols."""
        cells = (self.read_cell(m, p, seed) for m, p, seed in self._grid())
        return [cell for cell in cells if cell]

    def collect(self) -> List[dict]:
        """Record cells from finished fine-tuning work dirs without running anything."""
        for m, p, seed in self._grid():
            self.read_cell(m, p, seed)  # a corrupt cell is moved aside, not overwritten
            metrics = final_metrics(self.finetune_dir(m, p, seed), p.metrics, p.scale)
            if metrics is not None:
                self._record_done(Step('finetune', m, p, seed), metrics, seconds=None)
        return self.cells()

    # --------------------------------------------------------------- helpers
    def _grid(self):
        """Every (method, protocol, seed) cell of the table, in table order."""
        for m in self.methods:
            for p in self.suite.protocols:
                for seed in range(self.seeds_of(p)):
                    yield m, p, seed

    def _guess(self, kind: str) -> float:
        done = self.durations[kind]
        return sum(done) / len(done) if done else GUESS_SECONDS[kind]

    def log_path(self, step: Step, rank: int = 0) -> str:
        """Where a step's command output goes (process ``rank`` > 0 of a Slurm job: its own)."""
        suffix = f'.rank{rank}' if rank else ''
        return osp.join(self.work_dir, 'logs', _slug(step.name) + suffix + '.log')

    def run_step(self, step: Step, launcher: Optional[str] = None, rank: int = 0) -> bool:
        """Run one step; process ``rank`` 0 converts and records the cell, the others only train.

        A command killed by a signal (a preempted or requeued Slurm job, Ctrl-C) records no
        failed cell: the run is resumed from its latest checkpoint when started again.

        Returns:
            bool: Whether the step succeeded.
        """
        if step.kind == 'convert':
            return self._convert(step) if rank == 0 else True
        log_path = self.log_path(step, rank)
        t0 = time.time()
        cmd = self.command(step) if launcher is None else self.command(step, launcher)
        rc = self._execute(cmd, log_path)
        ok = rc == 0
        if rc < 0:
            self.log(f'[benchmark] {step.name} was stopped by signal {-rc}; started again, it '
                     f'resumes from its latest checkpoint.')
            return False
        if step.kind == 'pretrain' or rank > 0:
            if not ok:
                self.log(f'[benchmark] {step.name} failed; see {log_path}')
            return ok
        metrics = final_metrics(self.finetune_dir(step.method, step.protocol, step.seed),
                                step.protocol.metrics, step.protocol.scale)
        if ok and metrics is not None:
            self._record_done(step, metrics, seconds=time.time() - t0)
            self.log(f'[benchmark]     {step.name}: {metrics}')
            return True
        reason = 'training failed' if not ok else 'no evaluation found in the work dir'
        self._record_failure(step, f'{reason}; see {log_path}')
        return False

    def _convert(self, step: Step) -> bool:
        from ..transfer import convert_checkpoint
        from ..utils import CheckpointError
        method = step.method
        src = self.pretrain_checkpoint(method)
        try:
            self.log('[benchmark]     ' + convert_checkpoint(src, self.backbone_path(method),
                                                           to='torchvision').splitlines()[0])
            return True
        except CheckpointError as exc:
            self.log(f'[benchmark] conversion of {method.title} failed: {exc}')
            return False

    def _execute(self, cmd: List[str], log_path: str) -> int:
        """Run ``cmd`` from the repository root, output to ``log_path``, iterations echoed.

        Returns:
            int: The exit status (negative: killed by that signal).
        """
        os.makedirs(osp.dirname(log_path), exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        if self.data:
            env[self.suite.data_env] = self.data
        with open(log_path, 'a') as log_file:
            log_file.write(f'$ {shlex.join(cmd)}\n')
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                log_file.write(line)
                match = ITER_LINE.search(line)
                if match:
                    self.log(f'[benchmark]     iter {match[1]}/{match[2]}  loss {match[3]}')
            rc = proc.wait()
        if rc != 0:
            with open(log_path) as f:
                tail = f.readlines()[-15:]
            self.log(f'[benchmark]     exit status {rc}; last lines of {log_path}:\n'
                     + ''.join('        ' + t for t in tail))
        return rc

    def _record_done(self, step: Step, metrics: dict, seconds: Optional[float]) -> None:
        write_json_atomic(self.cell_path(step.method, step.protocol, step.seed), dict(
            method=step.method.key, protocol=step.protocol.key, seed=step.seed,
            status='done', metrics=metrics, seconds=seconds,
            work_dir=self.finetune_dir(step.method, step.protocol, step.seed)))

    def _record_failure(self, step: Step, reason: str) -> None:
        write_json_atomic(self.cell_path(step.method, step.protocol, step.seed), dict(
            method=step.method.key, protocol=step.protocol.key, seed=step.seed,
            status='failed', reason=reason))
        self.log(f'[benchmark]     {step.name} FAILED: {reason}')


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_')


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else \
        f'{seconds // 60}m{seconds % 60:02d}s'
