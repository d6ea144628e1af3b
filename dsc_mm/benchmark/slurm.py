"""Submit a benchmark to Slurm with submitit: every pretraining and every cell its own job.

:func:`submit` checks the input, then submits the jobs of :func:`.slurm_jobs.plan_jobs` that are
neither done nor queued/running (the record ``<work_dir>/slurm/jobs.json`` keeps their ids), each
cell ``afterok`` on its method's pretraining, and a report job ``afterany`` on all of them. A job
runs :class:`StepJob`: the runner's own steps, with the Python of the submitter and the code of
this checkout. A job stopped by preemption or its time limit is requeued (submitit's
checkpoint/requeue, or ``scontrol requeue``) and its training resumes from the latest checkpoint
(:meth:`BenchmarkRunner.command` adds ``--resume``); finished steps are skipped, so a cell file
is written once.
"""
import dataclasses
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .report import write_report
from .runner import REPO_ROOT, BenchmarkRunner
from .suites import SUITES, Method, select_protocols
from .slurm_jobs import REPORT, SlurmJob, job_by_key, layout, minutes, plan_jobs
from .slurm_state import (JobState, SlurmError, job_log, job_states, latest_ids,
                          partition_nodes, read_record, require_slurm, slurm_dir,
                          submission_lock, write_record)

DEFAULT_TIME = {'pretrain': '3-00:00:00', 'convert': '00:30:00', 'finetune': '1-00:00:00',
                REPORT: '00:30:00'}


@dataclass
class SlurmOptions:
    """How jobs are requested (``tools/benchmark.py --launcher slurm`` options).

    Args:
        partition: ``--partition`` (None: the cluster's default partition).
        time: Time limit per job kind (``pretrain``, ``convert``, ``finetune``, ``report``).
        gpus_per_node: GPUs of a node; a job of more processes spans several nodes.
        cpus_per_gpu: CPU cores per process.
        mem_per_gpu: Memory per process (``32G``), None: the partition's default.
        cpu: Request no GPUs (a CPU partition; the processes use gloo).
        max_nodes: Nodes a job may span (None: the partition's node count).
        sbatch: Any other sbatch option, ``{'account': 'abc', 'qos': 'high'}``.
    """
    partition: Optional[str] = None
    time: Dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TIME))
    gpus_per_node: int = 8
    cpus_per_gpu: int = 5
    mem_per_gpu: Optional[str] = None
    cpu: bool = False
    max_nodes: Optional[int] = None
    sbatch: Dict[str, str] = field(default_factory=dict)


def check(runner: BenchmarkRunner, options: SlurmOptions, query_cluster: bool = True) -> None:
    """Every input mistake as one sentence, before anything is submitted.

    Raises:
        SlurmError: No sbatch, an unknown partition, a bad time, a job larger than allowed.
    """
    for kind, value in options.time.items():
        try:
            minutes(value)
        except ValueError as exc:
            raise SlurmError(f'--time {kind}={value}: {exc}')
    if options.mem_per_gpu:
        _memory(options.mem_per_gpu)
    if options.gpus_per_node < 1 or options.cpus_per_gpu < 1:
        raise SlurmError('--gpus-per-node and --cpus-per-gpu must be at least 1.')
    max_nodes = options.max_nodes
    if query_cluster:
        require_slurm()
        max_nodes = min(max_nodes or 10**9, partition_nodes(options.partition))
    for job in plan_jobs(runner):
        try:
            nodes, _ = layout(job.tasks, options.gpus_per_node)
        except ValueError as exc:
            raise SlurmError(f'{job.key}: {exc}')
        if max_nodes and nodes > max_nodes:
            raise SlurmError(
                f'{job.key} needs {job.tasks} GPUs, more than --gpus-per-node '
                f'{options.gpus_per_node} x {max_nodes} node(s) allowed in partition '
                f'{options.partition or "(default)"}; lower --gpus or run that protocol elsewhere.')


def submit(runner: BenchmarkRunner, options: SlurmOptions) -> Dict[str, str]:
    """Submit what is neither done nor queued/running; resubmit what failed or was cancelled.

    Returns:
        dict: ``{job key: job id}`` of the jobs submitted now (empty: nothing to do).
    """
    import submitit
    check(runner, options)
    log = runner.log
    with submission_lock(runner.work_dir):
        record = read_record(runner.work_dir)
        if record['suite'] not in (None, runner.suite.name):
            raise SlurmError(f'work dir {runner.work_dir} holds jobs of suite '
                             f'{record["suite"]}; pass another --work-dir for suite '
                             f'{runner.suite.name}.')
        record['suite'] = runner.suite.name
        record['runner'] = runner_spec(runner)
        states = job_states(latest_ids(record).values())
        live: Dict[str, str] = {}  # job key -> id of a job the new ones may depend on
        new: Dict[str, str] = {}
        kept = done = 0
        for job in plan_jobs(runner):
            if all(runner.is_done(step) for step in job.steps):
                done += 1
                continue
            last = record['jobs'].get(job.key, [None])[-1]
            if last and last in states and states[last].active:
                live[job.key] = last
                kept += 1
                continue
            after = [live[key] for key in job.after if key in live]
            job_id = _submit_one(submitit, runner, options, job, after, 'afterok')
            record['jobs'].setdefault(job.key, []).append(job_id)
            live[job.key] = new[job.key] = job_id
            write_record(runner.work_dir, record)  # a crash later loses no job id
        if new:
            job_id = _submit_one(submitit, runner, options, SlurmJob(REPORT, REPORT),
                                 list(live.values()), 'afterany')
            record['jobs'].setdefault(REPORT, []).append(job_id)
            new[REPORT] = job_id
            write_record(runner.work_dir, record)
    log(f'[benchmark] slurm: {len(new)} job(s) submitted, {kept} queued or running kept, '
        f'{done} done; record {slurm_dir(runner.work_dir)}/jobs.json; '
        f'python tools/benchmark.py ... --status shows the grid.')
    return new


def _submit_one(submitit, runner: BenchmarkRunner, options: SlurmOptions, job: SlurmJob,
                after: List[str], dependency: str) -> str:
    executor = submitit.SlurmExecutor(folder=slurm_dir(runner.work_dir), python=sys.executable)
    nodes, per_node = layout(job.tasks, options.gpus_per_node)
    extra = dict(options.sbatch)
    if after:
        extra['dependency'] = f'{dependency}:' + ':'.join(after)
        # Without it, a cell whose pretraining failed stays pending forever.
        extra['kill-on-invalid-dep'] = 'yes'
    params = dict(
        job_name=f'dsc-{runner.suite.name}-{job.key.replace("/", "-")}',
        time=minutes(options.time.get(job.kind, DEFAULT_TIME[job.kind])), nodes=nodes,
        ntasks_per_node=per_node, cpus_per_task=options.cpus_per_gpu,
        stderr_to_stdout=True, additional_parameters=extra,
        # The jobs import dsc_mm from this checkout, whatever the node's working directory.
        setup=[f'export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}'])
    if options.partition:
        params['partition'] = options.partition
    if not options.cpu and job.kind in ('pretrain', 'finetune'):
        params['gpus_per_node'] = per_node
    if options.mem_per_gpu and options.cpu:  # no GPUs to count: memory per node
        number, unit = _memory(options.mem_per_gpu)
        params['mem'] = f'{number * per_node}{unit}'
    elif options.mem_per_gpu:
        params['mem_per_gpu'] = options.mem_per_gpu
    executor.update_parameters(**params)
    try:
        handle = executor.submit(StepJob(runner, job.key))
    except Exception as exc:  # submitit raises a bare Exception with sbatch's message
        message = str(exc).strip().splitlines()
        raise SlurmError(f'sbatch refused {job.key}: {message[-1] if message else exc}')
    return str(handle.job_id)


def _memory(text: str) -> tuple:
    """``'40G'`` -> ``(40, 'G')``; raises SlurmError for anything sbatch would not read."""
    match = re.fullmatch(r'(\d+)([KMGT]?)', text.strip().upper())
    if not match:
        raise SlurmError(f'--mem-per-gpu {text!r} is not a memory size such as 40G or 64000M.')
    return int(match[1]), match[2]


class _Checkpointable:
    """Base of :class:`StepJob`: submitit's ``Checkpointable`` when submitit is installed."""


try:  # submitit is needed to submit and in the jobs; the rest of the package works without it
    from submitit.helpers import Checkpointable as _Checkpointable  # noqa: F811
except ImportError:  # pragma: no cover
    pass


class StepJob(_Checkpointable):
    """What a Slurm job runs: the steps of its job key, with the runner of the submission.

    Being checkpointable, a job that gets submitit's signal (preemption, time limit) is requeued
    as the same call; the training then resumes from its latest checkpoint.

    Args:
        runner: The submitting runner (pickled with the job).
        key: The job key (:func:`.slurm_jobs.plan_jobs`, or ``report``).
    """

    def __init__(self, runner: BenchmarkRunner, key: str):
        self.runner, self.key = runner, key

    def __call__(self) -> str:
        import submitit
        runner, env = self.runner, submitit.JobEnvironment()
        if self.key == REPORT:
            finish(runner)
            return 'report written'
        job = job_by_key(runner, self.key)
        rank = env.global_rank
        stopping = _watch_stop_signals()
        # mmengine's Slurm launch reads MASTER_PORT; jobs sharing a node need distinct ports.
        os.environ.setdefault('MASTER_PORT', str(20000 + int(env.job_id.split('_')[0]) % 20000))
        runner.log(f'[benchmark] job {env.job_id} ({self.key}), process {rank} of '
                   f'{env.num_tasks}, restart {os.environ.get("SLURM_RESTART_COUNT", "0")}')
        for step in job.steps:
            if runner.is_done(step):
                runner.log(f'[benchmark] {step.name}: already done, skipped')
                continue
            launcher = 'slurm' if job.tasks > 1 else 'none'
            if not runner.run_step(step, launcher=launcher, rank=rank):
                if stopping[0]:
                    # Slurm is stopping the job to requeue it: wait for its kill, report nothing.
                    time.sleep(600)
                raise RuntimeError(f'{step.name} failed; see {runner.log_path(step, rank)}')
            if step.kind == 'finetune' and rank == 0:
                write_report(runner, quiet=True)  # the table follows the finished cells
        return 'done'


def _watch_stop_signals() -> List[bool]:
    """Note SIGTERM and USR2 (requeue, preemption, time limit), then call submitit's handlers.

    Returns:
        list: One flag, set to True once such a signal arrived.
    """
    seen = [False]
    for sig in (signal.SIGTERM, signal.SIGUSR2):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            seen[0] = True
            if callable(previous):
                previous(signum, frame)
        signal.signal(sig, handler)
    return seen


def finish(runner: BenchmarkRunner) -> str:
    """Record ended cells, then write results.md/json/png; returns the markdown.

    A cell whose job ended without a result (its pretraining failed, Slurm stopped it) gets a
    ``failed`` record that says why, unless the job recorded its own failure.
    """
    from .status import job_rows
    for row in job_rows(runner):
        step = row.job.cell
        if step is None or row.status != 'failed' or runner.read_cell(
                step.method, step.protocol, step.seed):
            continue
        runner._record_failure(step, row.detail)
    return write_report(runner, quiet=True)


def runner_spec(runner: BenchmarkRunner) -> dict:
    """What rebuilds the submitting runner (``--status`` needs only the work dir), as JSON."""
    return dict(suite=runner.suite.name, protocols=[p.key for p in runner.suite.protocols],
                methods=[dataclasses.asdict(m) for m in runner.methods], seeds=runner.seeds,
                gpus=runner.gpus, data=runner.data,
                pretrain_options=list(runner.pretrain_options[len(
                    runner.suite.pretrain_options):]),
                finetune_options=list(runner.finetune_options))


def runner_of(work_dir: str) -> BenchmarkRunner:
    """The runner of the submission recorded in ``work_dir``.

    Raises:
        SlurmError: The work dir has no submission, or one of a suite this checkout lacks.
    """
    spec = read_record(work_dir).get('runner')
    if not spec:
        raise SlurmError(f'{work_dir} has no Slurm submission (no slurm/jobs.json); submit '
                         f'with --launcher slurm first.')
    if spec['suite'] not in SUITES:
        raise SlurmError(f'{work_dir} was submitted with suite {spec["suite"]!r}, which this '
                         f'checkout does not define; use the checkout that submitted it.')
    suite = select_protocols(SUITES[spec['suite']], spec['protocols'])
    return BenchmarkRunner(suite, [Method(**m) for m in spec['methods']], work_dir,
                           data=spec['data'], seeds=spec['seeds'], gpus=spec['gpus'],
                           pretrain_options=spec['pretrain_options'],
                           finetune_options=spec['finetune_options'])


def job_state_of(runner: BenchmarkRunner) -> Dict[str, JobState]:
    """``{job key: state of its newest job}`` of the work dir's record."""
    ids = latest_ids(read_record(runner.work_dir))
    states = job_states(ids.values())
    return {key: states[i] for key, i in ids.items() if i in states}


__all__ = ['SlurmOptions', 'SlurmError', 'StepJob', 'check', 'submit', 'finish', 'job_log',
           'job_state_of']
