"""Wall and CPU time of a 2-thread dilated-conv loop under each OpenMP wait policy.

Why tests/conftest.py sets ``OMP_WAIT_POLICY=PASSIVE``: on a machine whose cores are busy (the
test suite's two xdist workers, the tools they start), threads that spin while waiting hold the
cores the other processes need. Run it on an idle and on a loaded machine::

    python perf/omp_wait_policy.py

Each policy runs in a fresh process (libgomp reads the variable when it loads).
"""
import os
import subprocess
import sys

LOOP = '''
import time, torch
torch.set_num_threads(2)
x = torch.randn(2, 64, 64, 64)
conv = torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2)
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(60):
    conv(x).relu().sum().backward()
print(f'{time.perf_counter() - wall:.2f} {time.process_time() - cpu:.2f}')
'''


def main() -> None:
    print(f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    for policy in ('default', 'ACTIVE', 'PASSIVE'):
        env = dict(os.environ)
        env.pop('OMP_WAIT_POLICY', None)
        if policy != 'default':
            env['OMP_WAIT_POLICY'] = policy
        wall, cpu = subprocess.run([sys.executable, '-c', LOOP], env=env, check=True,
                                   capture_output=True, text=True).stdout.split()
        print(f'OMP_WAIT_POLICY={policy:<8} wall {wall} s, CPU {cpu} s')


if __name__ == '__main__':
    main()
