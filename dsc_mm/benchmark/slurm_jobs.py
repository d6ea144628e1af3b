"""The benchmark plan as Slurm jobs: which steps each job runs, with how many processes, after what.

The jobs are made from :meth:`BenchmarkRunner.plan` (the plan of a local run), grouped:

- ``pretrain/<method>``: the pretraining run with the suite's processes (``--gpus``), then the
  conversion of its last checkpoint (process 0);
- ``convert/<method>``: the conversion of a user checkpoint (a row without pretraining), 1 task;
- ``cell/<method>__<protocol>__seed<k>``: one fine-tuning run with its protocol's processes,
  ``afterok`` on its method's job;
- ``report``: results.md/json/png once every other job has ended (``afterany``).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .runner import BenchmarkRunner, Step

REPORT = 'report'
# Slurm states of a job that has not ended (it may still run and finish).
ACTIVE = frozenset({'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED',
                    'REQUEUE_HOLD', 'REQUEUE_FED', 'RESIZING', 'SIGNALING', 'STAGE_OUT',
                    'RESV_DEL_HOLD', 'PREEMPTED'})


@dataclass
class SlurmJob:
    """One Slurm job of the plan.

    Args:
        key: Its name in the work dir's record (``cell/dsc-km__voc-det__seed0``).
        kind: ``pretrain``, ``convert``, ``finetune`` or ``report``.
        steps: The runner's steps it runs, in order.
        tasks: Processes (one per GPU; CPU processes with gloo on a CPU partition).
        after: Keys of the jobs it needs to have succeeded (``afterok``).
    """
    key: str
    kind: str
    steps: List[Step] = field(default_factory=list)
    tasks: int = 1
    after: Tuple[str, ...] = ()

    @property
    def cell(self) -> Optional[Step]:
        """The fine-tuning step of a cell job, else None."""
        return self.steps[0] if self.kind == 'finetune' else None


def plan_jobs(runner: BenchmarkRunner) -> List[SlurmJob]:
    """The runner's plan grouped into Slurm jobs (report job excluded), dependencies first."""
    jobs, of_method = [], {}
    for step in runner.plan():
        method = step.method.key
        if step.kind == 'pretrain':
            of_method[method] = SlurmJob(f'pretrain/{method}', 'pretrain', [step],
                                         runner.gpus_of(step))
            jobs.append(of_method[method])
        elif step.kind == 'convert':
            if method in of_method:  # converted by the pretraining job's process 0
                of_method[method].steps.append(step)
            else:
                of_method[method] = SlurmJob(f'convert/{method}', 'convert', [step], 1)
                jobs.append(of_method[method])
        else:
            parent = of_method.get(method)
            jobs.append(SlurmJob(
                f'cell/{method}__{step.protocol.key}__seed{step.seed}', 'finetune', [step],
                runner.gpus_of(step), after=(parent.key, ) if parent else ()))
    return jobs


def job_by_key(runner: BenchmarkRunner, key: str) -> SlurmJob:
    """The job named ``key`` of the runner's plan (``report`` included)."""
    if key == REPORT:
        return SlurmJob(REPORT, REPORT)
    for job in plan_jobs(runner):
        if job.key == key:
            return job
    raise KeyError(f'no job {key!r} in the plan of suite {runner.suite.name}')


def layout(tasks: int, gpus_per_node: int) -> Tuple[int, int]:
    """``(nodes, tasks_per_node)`` of a job of ``tasks`` processes.

    Raises:
        ValueError: ``tasks`` is more than a node holds and not a multiple of it.
    """
    if tasks <= gpus_per_node:
        return 1, tasks
    if tasks % gpus_per_node:
        raise ValueError(f'a job of {tasks} GPUs cannot be split evenly over nodes of '
                         f'{gpus_per_node} GPUs; pass a --gpus-per-node that divides {tasks}.')
    return tasks // gpus_per_node, gpus_per_node


def summary(runner: BenchmarkRunner, gpus_per_node: int,
            times: Dict[str, str]) -> List[str]:
    """Lines saying what a submission holds: jobs per kind, processes, nodes, time, dependencies."""
    jobs = plan_jobs(runner)
    kinds: Dict[tuple, int] = {}
    for job in jobs:
        name = job.kind if job.kind != 'finetune' else f'finetune {job.steps[0].protocol.key}'
        nodes, _ = layout(job.tasks, gpus_per_node)
        shape = (name, job.tasks, nodes, times.get(job.kind, ''), bool(job.after))
        kinds[shape] = kinds.get(shape, 0) + 1
    lines = [f'{len(jobs) + 1} Slurm jobs for suite {runner.suite.name} '
             f'({len(runner.methods)} rows, {len(runner.suite.protocols)} protocols):']
    hours = 0.
    for (name, tasks, nodes, time, after), count in kinds.items():
        dep = ', afterok on its method\'s pretraining' if after else ''
        lines.append(f'  {count:3d} x {name:<27} {tasks} GPUs ({nodes} node'
                     f'{"s" if nodes > 1 else ""}), time limit {time}{dep}')
        hours += count * tasks * _hours(time)
    lines.append(f'    1 x report                      1 CPU, time limit {times.get(REPORT, "")}, '
                 f'afterany on every other job')
    lines.append(f'  GPU-hours reserved at most (time limits x GPUs): {hours:,.0f}')
    return lines


def _hours(time: str) -> float:
    return minutes(time) / 60.


def minutes(time: str) -> int:
    """Slurm's time formats (``MM``, ``HH:MM:SS``, ``D-HH:MM[:SS]``) as whole minutes (>= 1).

    Raises:
        ValueError: Not one of those formats.
    """
    days, _, rest = time.rpartition('-')
    parts = rest.split(':')
    try:
        numbers = [int(p) for p in parts]
        day_count = int(days) if days else 0
    except ValueError:
        numbers = None
    if not numbers or len(numbers) > 3 or any(n < 0 for n in numbers):
        raise ValueError(f'time limit {time!r} is not in a Slurm format such as 90, 12:00:00 '
                         f'or 2-00:00:00.')
    if days:
        hms = numbers + [0] * (3 - len(numbers))  # D-HH, D-HH:MM, D-HH:MM:SS
    else:
        hms = {1: [0, numbers[0], 0], 2: [0, *numbers], 3: numbers}[len(numbers)]
        if len(numbers) == 2:  # MM:SS
            hms = [0, numbers[0], numbers[1]]
    total = day_count * 1440 + hms[0] * 60 + hms[1] + hms[2] / 60.
    return max(1, math.ceil(total))
