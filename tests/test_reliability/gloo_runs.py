"""Two gloo processes of the toy mmengine run (rel_helpers.toy_runner under DDP): what each
process saw, for the multi-process claims of the reliability hooks.

Each process runs, in order, on a shared work dir:
- ``full``: 6 iterations with ``RNGStateHook``, a checkpoint every 2;
- ``resumed``: 2 iterations, then a new Runner resumes that work dir up to 6;
- ``stop``: ``NonFiniteLossHook``, a checkpoint every iteration, and on rank 1 only a loss term
  that is NaN at iteration 3 without a gradient (the mean of an empty selection), so rank 0's
  own losses, parameters and optimizer state stay finite.
The seeds differ per rank (``diff_rank_seed``), so each process has its own generator states.
"""
import datetime
import multiprocessing
import os
import socket
import traceback
from pathlib import Path

import torch

WORLD_SIZE = 2


def _final(runner) -> dict:
    from dsc_mm.engine.hooks import get_rng_state
    return dict(weight=runner.model.module.linear.weight.detach().clone(), rng=get_rng_state())


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank), CUDA_VISIBLE_DEVICES='')
    torch.set_num_threads(1)
    out = {}
    try:
        import dsc_mm.engine.hooks  # noqa: F401  (registers the hooks)
        from dsc_mm.engine.hooks import NonFiniteLossError
        from rel_helpers import toy_runner
        # A short timeout: a process left waiting in a collective fails the test, not the CI.
        torch.distributed.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE,
                                             timeout=datetime.timedelta(seconds=60))
        ddp = dict(launcher='pytorch', randomness=dict(seed=0, diff_rank_seed=True),
                   cfg=dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                                   device_ids=None)))
        work = Path(root)
        full = toy_runner(work / 'full', max_iters=6, hooks=['RNGStateHook'], **ddp)
        full.train()
        out['full'] = _final(full)

        first = toy_runner(work / 'resumed', max_iters=2, hooks=['RNGStateHook'], **ddp)
        first.train()
        out['at_checkpoint'] = _final(first)  # nothing draws after the capture at iteration 2
        resumed = toy_runner(work / 'resumed', max_iters=6, hooks=['RNGStateHook'],
                             resume=True, **ddp)
        resumed.train()
        out['resumed'] = _final(resumed)

        stop = toy_runner(work / 'stop', max_iters=5, hooks=['NonFiniteLossHook'], interval=1,
                          empty_term_at=3 if rank == 1 else None, **ddp)
        try:
            stop.train()
            out['stop'] = 'finished'
        except NonFiniteLossError as exc:
            out['stop'] = str(exc)
    except Exception:  # recorded for the test's message; the other process then times out
        out['error'] = traceback.format_exc()
    torch.save(out, Path(root) / f'rank{rank}.pth')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_two_processes(root: Path, timeout: float = 240) -> list:
    """Run :func:`_worker` on 2 gloo processes; return each rank's record (rank order)."""
    context = multiprocessing.get_context('spawn')
    port = _free_port()
    processes = [context.Process(target=_worker, args=(rank, port, str(root)))
                 for rank in range(WORLD_SIZE)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    records = []
    for rank in range(WORLD_SIZE):
        path = root / f'rank{rank}.pth'
        assert path.is_file(), f'rank {rank} wrote no record (exit code ' \
                               f'{processes[rank].exitcode})'
        records.append(torch.load(path, weights_only=False))
    return records
