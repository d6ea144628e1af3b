"""The main job: pretrain -> convert -> fine-tune -> paper table (``tools/benchmark.py``)."""
from .charts import transfer_chart
from .results import final_metrics, read_json, write_json_atomic
from .runner import BenchmarkRunner
from .suites import SUITES, Method, Protocol, Suite, select_methods, select_protocols
from .table import aggregate, summarize, to_markdown

__all__ = [
    'SUITES', 'BenchmarkRunner', 'Method', 'Protocol', 'Suite', 'aggregate', 'final_metrics',
    'read_json', 'select_methods', 'select_protocols', 'summarize', 'to_markdown',
    'transfer_chart', 'write_json_atomic'
]
