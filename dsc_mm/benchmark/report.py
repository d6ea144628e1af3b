"""Write ``results.md``, ``results.json`` and ``results.png`` of a benchmark work dir."""
import os
import os.path as osp
import platform

from ..utils import atomic_file
from .charts import transfer_chart
from .results import write_json_atomic
from .table import aggregate, to_markdown


def write_report(runner, quiet: bool = False) -> str:
    """Aggregate the runner's cells into the three result files; returns the markdown."""
    suite, methods, protocols = runner.suite, runner.methods, runner.suite.protocols
    cells = runner.cells()
    table = aggregate(cells, methods, protocols)
    markdown = (f'# dsc_mm benchmark: suite `{suite.name}`\n\n{suite.description}.\n'
                f'Machine: {platform.machine()}, {platform.python_implementation()} '
                f'{platform.python_version()}; work dir `{runner.work_dir}`.\n\n'
                + to_markdown(table, methods, protocols))
    os.makedirs(runner.work_dir, exist_ok=True)
    with atomic_file(osp.join(runner.work_dir, 'results.md'), 'w') as f:
        f.write(markdown)
    write_json_atomic(osp.join(runner.work_dir, 'results.json'), dict(
        suite=suite.name, seeds={p.key: runner.seeds_of(p) for p in protocols}, cells=cells,
        methods={m.key: m.title for m in methods},
        protocols={p.key: dict(title=p.title, columns=list(p.metrics)) for p in protocols},
        table=table))
    if cells:
        transfer_chart(table, methods, protocols, osp.join(runner.work_dir, 'results.png'),
                       f'dsc_mm {suite.name} suite (mean ± std over n seeds)')
    if not quiet:
        runner.log(f'[benchmark] wrote {runner.work_dir}/results.md, results.json, results.png')
    return markdown
