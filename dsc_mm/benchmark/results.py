"""Per-cell results on disk: read a run's final metrics, store each cell as an atomic JSON file."""
import glob
import json
import os.path as osp
from typing import Dict, Optional

from ..utils import atomic_file


def write_json_atomic(path: str, obj) -> None:
    """Write ``obj`` as JSON so that ``path`` is either the old file or the complete new one."""
    with atomic_file(path, 'w', makedirs=True) as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def read_json(path: str) -> Optional[dict]:
    """The JSON object in ``path``, or None if the file does not exist."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def final_metrics(work_dir: str, keys: Dict[str, str], scale: float = 1.0) -> Optional[dict]:
    """The last evaluation of a finished mmengine run, as ``{column: value}``.

    mmengine's LocalVisBackend appends every logged step to ``<timestamp>/vis_data/scalars.json``
    (one JSON object per line; a resumed run starts a new timestamp folder). The evaluation is the
    last line that carries all metric ``keys``.

    Args:
        work_dir: The run's work dir.
        keys: Column name -> logged metric key (e.g. ``{'APbb': 'coco/bbox_mAP'}``).
        scale: Multiplier to the paper's percent.

    Returns:
        dict or None: None when the run has not evaluated yet.
    """
    found = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if all(k in record for k in keys.values()):
                    found = record
    if found is None:
        return None
    return {col: round(float(found[key]) * scale, 2) for col, key in keys.items()}
