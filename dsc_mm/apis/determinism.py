"""Bit-identical CPU training for a given seed: one thread count and one instruction set.

A seeded CPU run is repeatable only on the same thread count and the same SIMD instruction
set: both change the order in which floats are summed (measured: 6 DSC-KM iterations on 2
threads and on 1 thread, or with oneDNN on AVX-512 and on AVX2, end with 219 of 264 tensors
different; docs/demo.md). A config fixes both with a top-level key (not in ``env_cfg``,
which the mmdet/mmseg runtime bases define, and bases may not repeat a key), applied by
:func:`pin_cpu_numerics` before the Runner exists::

    cpu_numerics = dict(threads=2, isa='avx2')

The instruction set is pinned through the variables that torch's own kernels (ATen), oneDNN and
MKL read when they first run, which is after the config is read: no convolution or matrix
product has run by then (where ATen already chose, in a process that ran kernels before, a warning says so).
"""
import os
import platform
import warnings

import torch
from mmengine.config import Config

# torch's ATen kernels, oneDNN (convolutions) and MKL (matrix products) each name the ISA.
_ISA_VARIABLES = {'ATEN_CPU_CAPABILITY': str.lower, 'ONEDNN_MAX_CPU_ISA': str.upper,
                  'MKL_CBWR': str.upper}
CPU_ISAS = ('avx2', 'avx512')


def pin_cpu_numerics(cfg: Config) -> None:
    """Apply ``cpu_numerics.threads`` / ``cpu_numerics.isa`` and deterministic oneDNN kernels.

    Args:
        cfg: The full config; nothing happens for keys it does not set.

    Raises:
        ValueError: An unknown key or ISA, or a thread count below 1. An ISA that torch had
            already chosen otherwise in this process is a warning (set ATEN_CPU_CAPABILITY
            before starting it), as is an x86 ISA on another processor.
    """
    numerics = cfg.get('cpu_numerics') or {}
    unknown = set(numerics) - {'threads', 'isa'}
    if unknown:
        raise ValueError(f'cpu_numerics has unknown key(s) {sorted(unknown)}; it takes threads '
                         f'and isa.')
    threads = numerics.get('threads')
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f'cpu_numerics.threads must be at least 1, got {threads}.')
        torch.set_num_threads(int(threads))
    isa = numerics.get('isa')
    if isa is not None:
        if str(isa).lower() not in CPU_ISAS:
            raise ValueError(f'cpu_numerics.isa must be one of {CPU_ISAS}, got {isa!r}.')
        if platform.machine().lower() not in ('x86_64', 'amd64'):
            # AVX2/AVX-512 are x86 instruction sets: elsewhere (an Arm laptop) the run is
            # repeatable on that machine only, which is worth a warning, not a refusal.
            warnings.warn(f'cpu_numerics.isa={isa!r} is an x86 instruction set; this '
                          f'{platform.machine()} machine keeps its own kernels, so results '
                          f'repeat on this machine only.')
            isa = None
    if isa is not None:
        for name, case in _ISA_VARIABLES.items():
            os.environ[name] = case(str(isa))
        chosen = torch.backends.cpu.get_cpu_capability()  # computed once, on first query
        if chosen.lower() != str(isa).lower():
            # Only in a process that ran kernels before building the runner (a notebook, a
            # test): tools/train.py pins before any. Train on, but say what is lost.
            warnings.warn(f'cpu_numerics.isa={isa!r} but torch already runs {chosen} kernels '
                          f'in this process, so results repeat only on {chosen} machines; start '
                          f'it with ATEN_CPU_CAPABILITY={str(isa).lower()} in the environment '
                          f'to pin them.')
    if (cfg.get('randomness') or {}).get('deterministic'):
        # mmengine's deterministic=True calls torch.use_deterministic_algorithms, which does
        # not cover oneDNN: its convolutions have their own switch.
        torch.backends.mkldnn.deterministic = True
