"""Helpers shared by the step and data-pipeline benchmarks (clocks, statistics, RSS)."""
import resource
import statistics
import time
from typing import Callable, Dict, List, Sequence

import torch


def make_clock(kind: str, device: torch.device) -> Callable[[], float]:
    """The timer of a benchmark: ``wall`` (elapsed) or ``process`` (CPU time of the process).

    ``process`` sums the CPU time of all of this process's threads; with one torch thread it is
    the time the step would take on an idle core, which stays meaningful when other jobs load the
    machine. It cannot see device time, so it is refused for accelerators.
    """
    if kind == 'process':
        if device.type != 'cpu':
            raise SystemExit(f'--clock process measures CPU time and cannot time device {device}; '
                             f'use --clock wall there.')
        return time.process_time
    return time.perf_counter


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, only on CUDA (a no-op on CPU, whose ops are synchronous)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles (IQR) and range of timing samples."""
    values = sorted(samples)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method='inclusive')
    else:
        q1 = q3 = values[0]
    return dict(median=statistics.median(values), q1=q1, q3=q3, min=values[0], max=values[-1])


def current_rss_mib() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc/self/statm``)."""
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field} line; the RSS measurement needs Linux.')


def reset_peak_rss() -> bool:
    """Reset the peak RSS (``VmHWM``) to the current RSS, so that a later peak excludes the build.

    Writing 5 to ``/proc/self/clear_refs`` does that (Linux >= 4.0). Returns False where it is
    not allowed; the peak then still includes everything since the process started.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size of this process (since start or the last reset), in MiB."""
    try:
        return _status_kib('VmHWM') / 1024
    except (OSError, RuntimeError):  # not Linux: ru_maxrss (KiB on Linux, never reset)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rotations(names: List[str], rounds: int) -> List[List[str]]:
    """``rounds`` orders of ``names``, each rotated by one, so no method always runs first."""
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]
