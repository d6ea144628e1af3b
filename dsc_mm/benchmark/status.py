"""``tools/benchmark.py --status``: each job of a Slurm submission, queued/running/done/failed.

A row's status comes from the files first (a done cell, a finished pretraining), then from
Slurm's state of the newest job id the work dir recorded for it. A failed row says why: the
Slurm state (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, CANCELLED, FAILED with its exit code) or the
failed pretraining it depended on, and the log to read.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List

from .runner import ITER_LINE, BenchmarkRunner
from .slurm_jobs import SlurmJob, plan_jobs
from .slurm_state import JobState, job_log, job_states, read_record


@dataclass
class JobRow:
    """One line of the grid: ``status`` is done, queued, running, failed or not submitted."""
    job: SlurmJob
    status: str
    job_id: str = ''
    detail: str = ''


def job_rows(runner: BenchmarkRunner) -> List[JobRow]:
    """The grid of the runner's Slurm jobs, dependencies first."""
    record = read_record(runner.work_dir)
    ids = {key: job_ids[-1] for key, job_ids in record['jobs'].items() if job_ids}
    states = job_states(ids.values())
    rows: Dict[str, JobRow] = {}
    for job in plan_jobs(runner):
        rows[job.key] = _row(runner, job, ids.get(job.key, ''), states, rows)
    return list(rows.values())


def _row(runner: BenchmarkRunner, job: SlurmJob, job_id: str, states: Dict[str, JobState],
         rows: Dict[str, JobRow]) -> JobRow:
    step = job.cell
    cell = runner.read_cell(step.method, step.protocol, step.seed) if step else None
    if all(runner.is_done(s) for s in job.steps):
        metrics = ', '.join(f'{k} {v}' for k, v in cell['metrics'].items()) if cell else ''
        return JobRow(job, 'done', job_id, metrics)
    state = states.get(job_id)
    if state is not None and state.active:
        if state.state == 'PENDING':
            return JobRow(job, 'queued', job_id, state.reason)
        return JobRow(job, 'running', job_id, _progress(runner, job))
    parent = next((rows[key] for key in job.after if rows[key].status == 'failed'), None)
    if parent is not None and (state is None or state.reason == 'DependencyNeverSatisfied'):
        return JobRow(job, 'failed', job_id,
                      f'its {parent.job.kind} job {parent.job_id} failed: {parent.detail}')
    if cell is not None:  # the job recorded its own failure
        ended = f'job {job_id} ended {state.describe()}; ' if state else ''
        return JobRow(job, 'failed', job_id, ended + cell['reason'])
    if not job_id:
        return JobRow(job, 'not submitted')
    if state is None:
        return JobRow(job, 'failed', job_id, f'Slurm no longer knows job {job_id} and it '
                      f'left no result; see {job_log(runner.work_dir, job_id)}')
    return JobRow(job, 'failed', job_id,
                  f'{state.describe()}; see {job_log(runner.work_dir, job_id)}')


def _progress(runner: BenchmarkRunner, job: SlurmJob) -> str:
    """``pretrain DSC-KM iter 120/200`` from the log of the job's first unfinished step."""
    step = next((s for s in job.steps if not runner.is_done(s)), job.steps[0])
    path = runner.log_path(step)
    last = None
    if osp.isfile(path):
        with open(path, errors='replace') as f:
            for line in f:
                match = ITER_LINE.search(line)
                last = match or last
    where = f' iter {last[1]}/{last[2]}' if last else ''
    return f'{step.kind}{where}'


def format_rows(rows: List[JobRow]) -> str:
    """The grid as aligned text, with a count per status."""
    width = max((len(r.job.key) for r in rows), default=10)
    lines = [f'{"job":<{width}}  {"status":<13}  {"job id":<9}  detail']
    for r in rows:
        lines.append(f'{r.job.key:<{width}}  {r.status:<13}  {r.job_id or "-":<9}  {r.detail}')
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(', '.join(f'{n} {status}' for status, n in counts.items()))
    return '\n'.join(lines)


def status_text(runner: BenchmarkRunner) -> str:
    """The grid of the runner's Slurm jobs."""
    return format_rows(job_rows(runner))
