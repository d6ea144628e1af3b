"""Mutation testing of the method's core with mutmut (``make mutation``; see docs/mutation.md).

Each AREA mutates a few source files and runs only the fast tests of that area, in its own
scratch copy of the repository (``work_dirs/mutation/<area>``, rebuilt on every run, so a result
always reflects the current sources and tests). mutmut records which tests reach each mutated
function and runs only those against each of its mutants.

A surviving mutant either gets a test that kills it or a line in docs/mutation.md's table of
equivalent mutants (its name and why no test can tell it from the original). This script
prints the table module | mutants | killed | equivalent | survived with the time of each area
and exits 1 when a mutant survives that is not listed as equivalent.

Usage::

    python tools/mutation.py                # every area
    python tools/mutation.py transfer table # some areas
    python tools/mutation.py --list         # the areas, their sources and tests
"""
import argparse
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: area -> (files to mutate, pytest arguments selecting the tests that judge them). Each
#: selection runs in seconds, so an area takes minutes; tests that launch processes (CLI,
#: distributed) are left out on purpose.
AREAS = {
    'transfer': (['dsc_mm/transfer/keys.py', 'dsc_mm/transfer/convert.py',
                  'dsc_mm/transfer/targets.py', 'dsc_mm/transfer/detectron2.py'],
                 # The end-to-end checks that build mmdet/mmseg detectors or convert a real
                 # R50 (3-17 s each) stay in the suite, not in the per-mutant runs.
                 ['tests/test_transfer/test_keys.py', 'tests/test_transfer/test_convert.py',
                  '-k', 'not features_identical and not r50 and not c4 and not d8']),
    'results': (['dsc_mm/benchmark/results.py', 'dsc_mm/benchmark/table.py'],
                ['tests/test_benchmark/test_results.py', 'tests/test_benchmark/test_table.py']),
    'feature_cache': (['dsc_mm/probes/feature_cache.py'],
                      ['tests/test_probes/test_feature_cache.py']),
    'models_utils': (['dsc_mm/models/utils/kmeans.py', 'dsc_mm/models/utils/sinkhorn.py',
                      'dsc_mm/models/utils/neighbours.py', 'dsc_mm/models/utils/queue.py',
                      'dsc_mm/models/utils/pixel_pool.py'],
                     ['tests/test_models/test_utils/test_kmeans.py',
                      'tests/test_models/test_utils/test_sinkhorn.py',
                      'tests/test_models/test_utils/test_neighbours.py',
                      'tests/test_models/test_utils/test_queue.py',
                      'tests/test_models/test_utils/test_pixel_pool.py',
                      'tests/test_models/test_utils/test_contrast_set.py']),
    'models_heads': (['dsc_mm/models/heads/*.py'], ['tests/test_models/test_heads']),
    'models_dsc': (['dsc_mm/models/selfsup/dsc.py'],
                   ['tests/test_models/test_selfsup/test_dsc_construction.py',
                    'tests/test_models/test_selfsup/test_dsc_counter.py',
                    'tests/test_models/test_selfsup/test_dsc_reduction.py',
                    'tests/test_models/test_selfsup/test_dsc_wiring.py',
                    'tests/test_models/test_selfsup/test_dsc_schedules.py',
                    'tests/test_models/test_selfsup/test_dsc_state.py',
                    # The ImageNet configs take a minute to read; the Runner runs of the
                    # resume and accumulation tests (10-20 s each) judge what test_dsc_counter
                    # pins in milliseconds (rescaling, the refusal before any work).
                    '-k', 'not paper_configs and not resuming_an_8_gpu and not '
                    'gradient_accumulation_is_refused_with']),
}

#: Copied next to the mutated package: what the selected tests read (conftest, configs, and the
#: scripts of tools/ and perf/ that tests load, e.g. perf/semantic_scale.py's SimulatedRanks).
ALSO_COPY = ['tests', 'configs', 'tools', 'perf', 'pyproject.toml']

#: Appended to the scratch copy's tests/conftest.py (never to the repository's): while a
#: mutant is under test, run the tests that reach it fastest first, by the durations mutmut
#: recorded in its stats run. mutmut hands them over as a set (an arbitrary order) and stops at
#: the first failure (-x), so a mutant that a millisecond test kills would otherwise often wait
#: for a training test first.
FASTEST_FIRST_HOOK = '''

# Added by tools/mutation.py (scratch copy only). A module holds one function of a name, so
# this hook replaces the project's own pytest_collection_modifyitems above (make test's
# xdist grouping) and calls it first.
_project_collection_modifyitems = globals().get('pytest_collection_modifyitems')


def pytest_collection_modifyitems(config, items):
    import json
    import os
    if _project_collection_modifyitems is not None:
        _project_collection_modifyitems(config, items)
    if '__mutmut_' not in os.environ.get('MUTANT_UNDER_TEST', '') or \\
            not os.path.isfile('mutmut-stats.json'):
        return
    with open('mutmut-stats.json', encoding='utf-8') as f:
        duration = json.load(f)['duration_by_test']
    items.sort(key=lambda item: duration.get(item.nodeid, float('inf')))
'''

EQUIVALENT_DOC = osp.join(REPO_ROOT, 'docs', 'mutation.md')
#: A row of docs/mutation.md's equivalent-mutant table: | `mutant name` | why |
_EQUIVALENT_ROW = re.compile(r'^\|\s*`([^`]+__mutmut_\d+)`\s*\|\s*(\S.*?)\s*\|\s*$')

KILLED = {'killed', 'timeout', 'segfault', 'caught by type check'}


def equivalent_mutants(path: str = EQUIVALENT_DOC) -> dict:
    """``{mutant name: reason}`` listed in docs/mutation.md (empty when the file is absent)."""
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return {m.group(1): m.group(2) for m in map(_EQUIVALENT_ROW.match, f) if m}


def module_of(mutant: str) -> str:
    """``dsc_mm.transfer.keys.x_detect_depth__mutmut_3`` -> ``dsc_mm.transfer.keys``."""
    return re.split(r'\.x[_\u01c1]', mutant, maxsplit=1)[0]


def mutmut_config(sources, tests) -> str:
    """The ``[tool.mutmut]`` section of one area."""
    def toml_list(items):
        return '[' + ', '.join(f'"{x}"' for x in items) + ']'
    # -p no:cacheprovider: no .pytest_cache in the scratch copy; -x: the first failure kills.
    return ('\n[tool.mutmut]\n'
            'source_paths = ["dsc_mm"]\n'
            f'only_mutate = {toml_list(sources)}\n'
            f'also_copy = {toml_list(ALSO_COPY[:-1])}\n'
            f'pytest_add_cli_args_test_selection = {toml_list(tests)}\n'
            'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]\n')


def unwrap_no_grad(source: str) -> str:
    """Turn ``@torch.no_grad()`` on a function into a ``with torch.no_grad():`` body.

    mutmut 3 leaves decorated functions alone (its trampoline replaces the function), which
    would keep e.g. ``sinkhorn_knopp`` out of reach; the rewritten scratch copy computes the
    same thing and lets mutmut mutate it. Only the scratch copy is rewritten.
    """
    import libcst as cst

    class Unwrap(cst.CSTTransformer):

        def leave_FunctionDef(self, original, updated):
            no_grad = [d for d in updated.decorators
                       if cst.Module([]).code_for_node(d.decorator) == 'torch.no_grad()']
            if not no_grad or not isinstance(updated.body, cst.IndentedBlock):
                return updated
            body = list(updated.body.body)
            first = body[0].body[0] if isinstance(body[0], cst.SimpleStatementLine) else None
            # A docstring stays the function's first statement.
            doc = body[:1] if isinstance(first, cst.Expr) and isinstance(
                first.value, (cst.SimpleString, cst.ConcatenatedString)) else []
            wrapped = cst.With(items=[cst.WithItem(cst.parse_expression('torch.no_grad()'))],
                               body=cst.IndentedBlock(body=body[len(doc):]))
            return updated.with_changes(
                decorators=[d for d in updated.decorators if d not in no_grad],
                body=updated.body.with_changes(body=doc + [wrapped]))

    return cst.parse_module(source).visit(Unwrap()).code


def add_fastest_first_hook(work_dir: str) -> None:
    """Append :data:`FASTEST_FIRST_HOOK` to the scratch copy's tests/conftest.py."""
    with open(osp.join(work_dir, 'tests', 'conftest.py'), 'a', encoding='utf-8') as f:
        f.write(FASTEST_FIRST_HOOK)


def prepare(area: str, work_dir: str) -> None:
    """A fresh scratch copy of the package, the tests and the area's mutmut config."""
    sources, tests = AREAS[area]
    missing = [t for t in tests if t.startswith('tests/') and
               not osp.exists(osp.join(REPO_ROOT, t))]
    if missing:
        sys.exit(f'mutation area {area!r} names tests that do not exist: {", ".join(missing)}; '
                 f'fix AREAS in tools/mutation.py.')
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.pytest_cache')
    for name in ['dsc_mm'] + ALSO_COPY:
        src, dst = osp.join(REPO_ROOT, name), osp.join(work_dir, name)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    for pattern in sources:
        for path in glob.glob(osp.join(work_dir, pattern)):
            with open(path, encoding='utf-8') as f:
                source = f.read()
            with open(path, 'w', encoding='utf-8') as f:
                f.write(unwrap_no_grad(source))
    add_fastest_first_hook(work_dir)
    with open(osp.join(work_dir, 'pyproject.toml'), 'a', encoding='utf-8') as f:
        f.write(mutmut_config(sources, tests))


def mutmut(work_dir: str, *args, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the mutmut CLI of this interpreter in ``work_dir`` with a clean import path."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    # The scratch copy must be the only dsc_mm on the path (mutmut imports from mutants/).
    env.pop('PYTHONPATH', None)
    cmd = [sys.executable, '-c', 'import sys; from mutmut.__main__ import cli; sys.exit(cli())',
           *args]
    return subprocess.run(cmd, cwd=work_dir, env=env, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)


def statuses(work_dir: str) -> dict:
    """``{mutant name: status}`` of a finished run (``mutmut results --all true``)."""
    out = mutmut(work_dir, 'results', '--all', 'true', capture=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(': ')
        if sep and '__mutmut_' in name:
            found[name] = status
    return found


def refresh_tests(work_dir: str) -> list:
    """Copy the current tests into an existing scratch copy; returns the mutants to re-check.

    For ``--retry``: the sources must be unchanged since the full run (mutant names number the
    mutations of each function), only tests were added or fixed.
    """
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.pytest_cache')
    for name in ALSO_COPY[:-1]:
        shutil.copytree(osp.join(REPO_ROOT, name), osp.join(work_dir, name),
                        dirs_exist_ok=True, ignore=ignore)
    add_fastest_first_hook(work_dir)
    return [name for name, status in statuses(work_dir).items() if status not in KILLED]


def run_area(area: str, root: str, equivalent: dict, max_children: int,
             retry: bool = False) -> tuple:
    """Mutate one area; returns (rows by module, survivors not listed, seconds)."""
    work_dir = osp.join(root, area)
    names = []
    if retry and osp.isdir(osp.join(work_dir, 'mutants')):
        names = refresh_tests(work_dir)
        print(f'{area}: re-checking {len(names)} surviving mutants with the current tests ...',
              flush=True)
    else:
        prepare(area, work_dir)
        print(f'{area}: mutating {" ".join(AREAS[area][0])} ...', flush=True)
    start = time.monotonic()
    # mutmut's progress is a spinner (a few MB of carriage returns in a log): kept for errors.
    proc = mutmut(work_dir, 'run', '--max-children', str(max_children), *names, capture=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        print(proc.stdout[-5000:].replace('\r', '\n'))
        sys.exit(f'mutmut failed in {work_dir} (exit {proc.returncode}); its output above says '
                 f'why (a failing clean test run means the area\'s tests fail without mutants).')
    counts = defaultdict(Counter)
    survivors = []
    for name, status in sorted(statuses(work_dir).items()):
        row = counts[module_of(name)]
        row['mutants'] += 1
        if status in KILLED:
            row['killed'] += 1
        elif name in equivalent:
            row['equivalent'] += 1
        else:
            row['survived'] += 1
            survivors.append(f'{name} ({status})')
    return counts, survivors, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('areas', nargs='*', help=f'areas to run (default: all of '
                        f'{", ".join(AREAS)})')
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT, 'work_dirs', 'mutation'))
    parser.add_argument('--max-children', type=int, default=1,
                        help='parallel mutant workers (default 1: the machine is shared)')
    parser.add_argument('--list', action='store_true', help='print the areas and exit')
    parser.add_argument('--retry', action='store_true',
                        help='re-check only the survivors of the last full run of each area '
                             'with the current tests (the sources must be unchanged)')
    args = parser.parse_args(argv)
    unknown = [a for a in args.areas if a not in AREAS]
    if unknown:
        print(f'unknown mutation area {", ".join(unknown)}; choose from {", ".join(AREAS)}.',
              file=sys.stderr)
        return 2
    if args.list:
        for area, (sources, tests) in AREAS.items():
            print(f'{area}: mutates {" ".join(sources)}; tests {" ".join(tests)}')
        return 0
    equivalent = equivalent_mutants()
    lines = ['| area | module | mutants | killed | equivalent | survived | area time |',
             '|---|---|---|---|---|---|---|']
    all_survivors = []
    for area in args.areas or list(AREAS):
        counts, survivors, seconds = run_area(area, args.work_dir, equivalent,
                                              args.max_children, args.retry)
        all_survivors += survivors
        for i, (module, c) in enumerate(sorted(counts.items())):
            took = f'{seconds / 60:.1f} min' if i == 0 else ''
            lines.append(f'| {area if i == 0 else ""} | {module} | {c["mutants"]} | '
                         f'{c["killed"]} | {c["equivalent"]} | {c["survived"]} | {took} |')
    print('\n'.join(lines))
    if all_survivors:
        print(f'\n{len(all_survivors)} mutants survived and are not listed as equivalent in '
              f'docs/mutation.md; kill each with a test or list it there with the reason:')
        print('\n'.join(f'  {s}' for s in all_survivors))
        print('Show one with: cd work_dirs/mutation/<area> && python -m mutmut show NAME')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
