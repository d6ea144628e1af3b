"""What Slurm says about jobs and partitions, and the work dir's record of submitted job ids.

The record ``<work_dir>/slurm/jobs.json`` maps each job key (see :mod:`.slurm_jobs`) to the
Slurm job ids submitted for it, newest last. Job states come from ``scontrol show job`` (jobs
still in the controller's memory, ``MinJobAge``), then ``sacct`` for older ones where the
cluster keeps accounting.
"""
import fcntl
import os
import os.path as osp
import shutil
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from .results import read_json, write_json_atomic
from .slurm_jobs import ACTIVE


class SlurmError(RuntimeError):
    """A problem of the submission a user can fix; its message is one sentence."""


@dataclass(frozen=True)
class JobState:
    """A Slurm job's ``state`` (RUNNING, TIMEOUT, ...), ``reason`` and ``exit_code`` (``1:0``)."""
    job_id: str
    state: str
    reason: str = ''
    exit_code: str = ''

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def describe(self) -> str:
        """``FAILED with exit code 1:0``, ``CANCELLED (DependencyNeverSatisfied)``, ``TIMEOUT``."""
        text = self.state
        if self.state == 'FAILED' and self.exit_code:
            text += f' with exit code {self.exit_code}'
        if self.reason and self.reason not in ('None', 'NonZeroExitCode'):
            text += f' ({self.reason})'
        return text


def slurm_dir(work_dir: str) -> str:
    """Where the record, the lock and submitit's job files of a work dir live."""
    return osp.join(work_dir, 'slurm')


def job_log(work_dir: str, job_id: str) -> str:
    """submitit's output file of a job (process 0), stdout and stderr together."""
    return osp.join(slurm_dir(work_dir), f'{job_id}_0_log.out')


def read_record(work_dir: str) -> dict:
    """``{'suite': name, 'jobs': {key: [job ids]}}`` (empty when nothing was submitted)."""
    return read_json(osp.join(slurm_dir(work_dir), 'jobs.json')) or dict(suite=None, jobs={})


def write_record(work_dir: str, record: dict) -> None:
    write_json_atomic(osp.join(slurm_dir(work_dir), 'jobs.json'), record)


def latest_ids(record: dict) -> Dict[str, str]:
    """``{job key: its newest job id}``."""
    return {key: ids[-1] for key, ids in record['jobs'].items() if ids}


@contextmanager
def submission_lock(work_dir: str):
    """Hold the work dir for one submission; another one running at the same time is refused.

    Raises:
        SlurmError: Another process holds the lock.
    """
    os.makedirs(slurm_dir(work_dir), exist_ok=True)
    path = osp.join(slurm_dir(work_dir), 'submit.lock')
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            raise SlurmError(f'work dir {work_dir} is held by another submission ({holder}, '
                             f'lock {path}); wait for it to finish or pass another --work-dir.')
        f.seek(0)
        f.truncate()
        f.write(f'pid {os.getpid()} on {socket.gethostname()}')
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def require_slurm() -> None:
    """Raises SlurmError when this machine has no ``sbatch``/``scontrol`` (no Slurm login node)."""
    missing = [tool for tool in ('sbatch', 'scontrol', 'sinfo') if shutil.which(tool) is None]
    if missing:
        raise SlurmError(f'{" and ".join(missing)} not found on the PATH: --launcher slurm '
                         f'submits from a Slurm login node (or run tools/ci/slurm_local.sh '
                         f'start for a one-node test cluster).')


def partition_nodes(partition: Optional[str]) -> int:
    """Nodes of ``partition`` (None: the default partition) as ``sinfo`` lists them.

    Raises:
        SlurmError: The partition is unknown, or Slurm does not answer.
    """
    cmd = ['sinfo', '-h', '-o', '%P %D'] + (['-p', partition] if partition else [])
    out = _slurm(cmd)
    nodes = 0
    for line in out.splitlines():
        name, count = line.split()
        if partition or name.endswith('*'):  # '*' marks the default partition
            nodes += int(count)
    if nodes == 0:
        known = sorted({line.split()[0].rstrip('*') for line in _slurm(
            ['sinfo', '-h', '-o', '%P %D']).splitlines()})
        what = f'partition {partition!r} is unknown' if partition else 'no default partition'
        raise SlurmError(f'{what} to Slurm; pass --partition with one of {known}.')
    return nodes


def job_states(job_ids: Iterable[str]) -> Dict[str, JobState]:
    """The states of ``job_ids`` Slurm still knows (a purged id without accounting is absent)."""
    wanted = {str(i) for i in job_ids}
    if not wanted:
        return {}
    states = {}
    for line in _slurm(['scontrol', '-o', 'show', 'job'], allow_fail=True).splitlines():
        fields = _fields(line)
        if fields.get('JobId') in wanted:
            states[fields['JobId']] = JobState(fields['JobId'], fields.get('JobState', ''),
                                               fields.get('Reason', ''),
                                               fields.get('ExitCode', ''))
    rest = sorted(wanted - set(states))
    if rest and shutil.which('sacct'):
        out = _slurm(['sacct', '-n', '-P', '-X', '-o', 'JobIDRaw,State,ExitCode,Reason', '-j',
                      ','.join(rest)], allow_fail=True)
        for line in out.splitlines():
            parts = line.split('|')
            if len(parts) >= 3 and parts[0] in wanted:
                # sacct writes 'CANCELLED by 0'; the first word is the state.
                states[parts[0]] = JobState(parts[0], parts[1].split()[0], *parts[3:4],
                                            exit_code=parts[2])
    return states


def cancel(job_ids: List[str]) -> None:
    if job_ids:
        _slurm(['scancel', *job_ids], allow_fail=True)


def _fields(line: str) -> Dict[str, str]:
    """``scontrol -o`` output (``Key=Value Key=Value ...``) as a dict (values without spaces)."""
    fields = {}
    for item in line.split():
        key, sep, value = item.partition('=')
        if sep and key not in fields:
            fields[key] = value
    return fields


def _slurm(cmd: List[str], allow_fail: bool = False) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if allow_fail:
            return ''
        raise SlurmError(f'`{" ".join(cmd)}` did not answer ({exc}); is slurmctld up?')
    if result.returncode != 0 and not allow_fail:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise SlurmError(f'`{" ".join(cmd)}` failed: {message[-1] if message else "no output"}; '
                         f'is slurmctld up (sinfo)?')
    return result.stdout
