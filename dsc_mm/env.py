"""Print the version matrix, whether mmcv's compiled ops load, and the device.

Usage: ``python -m dsc_mm.env [--short]``
"""
import argparse
import importlib
import platform
import sys

STACK = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmpretrain', 'mmdet', 'mmseg', 'numpy',
         'cv2', 'pycocotools')


def collect():
    """Return ``(rows, problems)``: (name, value) pairs and advice strings."""
    rows, problems = [('python', platform.python_version())], []
    for name in STACK:
        try:
            mod = importlib.import_module(name)
            rows.append((name, getattr(mod, '__version__', 'unknown')))
        except Exception as exc:  # noqa: BLE001 - report any import failure as a row
            rows.append((name, f'NOT IMPORTABLE ({type(exc).__name__}: {exc})'))
            problems.append(f'{name} does not import; run `make install` (tools/setup_env.sh).')
    try:
        from mmcv.ops import RoIAlign, nms  # noqa: F401
        import torch
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
        rows.append(('mmcv ops (nms, RoIAlign)', f'OK (nms kept {keep.tolist()})'))
    except Exception as exc:  # noqa: BLE001
        rows.append(('mmcv ops (nms, RoIAlign)', f'MISSING ({exc})'))
        problems.append('mmcv was built without its compiled ops: delete the cached wheel in '
                        '~/.cache/dsc_mm/wheels and rerun tools/setup_env.sh (it builds with '
                        'MMCV_WITH_OPS=1 and --no-build-isolation).')
    try:
        import torch
        if torch.cuda.is_available():
            device = f'cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)'
        else:
            device = f'cpu ({torch.get_num_threads()} threads); no CUDA device visible'
        rows.append(('device', device))
        rows.append(('torch CUDA build', str(torch.version.cuda)))
    except Exception:  # noqa: BLE001
        pass
    return rows, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--short', action='store_true', help='one line')
    args = parser.parse_args(argv)
    rows, problems = collect()
    if args.short:
        print(', '.join(f'{k} {v}' for k, v in rows))
    else:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f'{k:<{width}}  {v}')
        for p in problems:
            print(f'ADVICE: {p}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
