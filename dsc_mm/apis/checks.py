"""Pre-flight checks of ``tools/train.py``: each user mistake becomes one sentence, before training.

- :func:`check_config`: an unknown ``type`` or a misspelt argument anywhere in the model,
  dataset, pipeline or hook configs, with the nearest valid names (mmengine would only fail
  deep inside the Runner, with a traceback).
- :func:`check_inputs`: the checkpoint to resume from is readable and safe; COCO annotation
  files of mmdet configs point to existing images.
- :func:`build_train_data`: builds the Runner's training data (what ``runner.train()`` would
  do first), so an empty folder or broken images stop the run before any checkpoint exists.
- :func:`add_reliability_hooks`: the hooks every run gets (non-finite loss stop, RNG states
  in checkpoints).
"""
import difflib
import inspect
import os.path as osp
import re
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import DATA_SAMPLERS, DATASETS, HOOKS, MODELS, TRANSFORMS, Registry

from ..utils import load_checkpoint_file

#: The hooks :func:`add_reliability_hooks` puts in every config (``custom_hooks``).
RELIABILITY_HOOKS = ('NonFiniteLossHook', 'RNGStateHook')

# Sub-configs built by helpers that take extra keys (``build_norm_layer`` pops
# ``requires_grad``...), by non-model registries (assigners, samplers, weight init) or by
# ``getattr(mmcv.ops, type)`` (RoI layers): their types and keys are not checked here.
_UNCHECKED_KEYS = frozenset({'init_cfg', 'train_cfg', 'test_cfg', 'norm_cfg', 'act_cfg',
                             'conv_cfg', 'dcn', 'plugins', 'roi_layer', 'upsample_cfg',
                             'bbox_coder', 'prior_generator', 'anchor_generator', 'sampler',
                             'assigner', 'block_cfg', 'loss_cfg'})
_IGNORED_ARGS = frozenset({'type', '_scope_', '_delete_'})


def _candidates(registry: Registry) -> List[str]:
    """Every name ``registry`` resolves: its own modules and its ancestors'."""
    names = set()
    while registry is not None:
        names.update(registry.module_dict)
        registry = registry.parent
    return sorted(names)


def _suggest(name: str, valid: List[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    shown = ', '.join(valid[:12]) + (', ...' if len(valid) > 12 else '')
    return f'valid names: {shown}'


def _typed_nodes(node, path: str) -> Iterator[Tuple[str, dict]]:
    """``(path, dict)`` for every dict with a string ``type`` below ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node
        for key, value in node.items():
            if key not in _UNCHECKED_KEYS:
                yield from _typed_nodes(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_nodes(value, f'{path}[{i}]')


def _registry_for(path: str, section: Registry) -> Registry:
    """Transforms live below ``pipeline`` keys (and ``transforms`` of wrappers such as
    ``MultiView``/``RandomApply``); everything else in the section's registry."""
    if '.pipeline' in path or '.transforms' in path:
        return TRANSFORMS
    return section


def _check_node(path: str, node: dict, registry: Registry, scope: str, config: str) -> None:
    type_name = node['type']
    with registry.switch_scope_and_registry(scope) as scoped:
        obj = scoped.get(type_name)
        if obj is None:
            raise ValueError(
                f"Config {config}: {path} has type='{type_name}', which is not registered in "
                f"{scoped.scope}'s {registry.name} registry; "
                f'{_suggest(type_name.split(".")[-1], _candidates(scoped))}')
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return  # forwards **kwargs: unknown keys may be legitimate
    valid = [name for name, p in params.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in node:
        if key not in _IGNORED_ARGS and key not in valid:
            raise ValueError(
                f"Config {config}: {path} (type='{type_name}') has no argument '{key}'; "
                f'{_suggest(key, valid)}')


def check_config(cfg: Config, config_path: str = '') -> None:
    """Raise one ``ValueError`` sentence for an unknown type or a misspelt argument.

    Checked: ``model`` (MODELS), the datasets of the dataloaders (DATASETS) with their
    pipelines (TRANSFORMS) and samplers (DATA_SAMPLERS), and ``custom_hooks`` (HOOKS), each in
    the config's ``default_scope``. Sub-configs built outside the registries' plain
    ``build`` (see ``_UNCHECKED_KEYS``) and classes taking ``**kwargs`` are not checked for
    keys; mmengine still reports those when it builds them.

    Args:
        cfg (Config): The merged config (after ``--cfg-options``).
        config_path (str): The config file, for the message.
    """
    scope = cfg.get('default_scope')
    config = config_path or cfg.filename
    sections = [('model', cfg.get('model'), MODELS),
                ('custom_hooks', cfg.get('custom_hooks'), HOOKS)]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader_cfg = cfg.get(loader) or {}
        sections.append((f'{loader}.dataset', loader_cfg.get('dataset'), DATASETS))
        sections.append((f'{loader}.sampler', loader_cfg.get('sampler'), DATA_SAMPLERS))
    for name, node, registry in sections:
        if node is None:
            continue
        for path, typed in _typed_nodes(node, name):
            _check_node(path, typed, _registry_for(path, registry), scope, config)


def add_reliability_hooks(cfg: Config) -> None:
    """Append :data:`RELIABILITY_HOOKS` to ``cfg.custom_hooks`` unless the config lists them."""
    from ..engine import hooks  # noqa: F401  (registers them)
    custom = list(cfg.get('custom_hooks', None) or [])
    present = {hook.get('type') for hook in custom if isinstance(hook, dict)}
    custom += [dict(type=name) for name in RELIABILITY_HOOKS if name not in present]
    cfg.custom_hooks = custom


def resume_checkpoint(cfg: Config) -> Optional[str]:
    """The file a ``resume=True`` config will load, or None (fresh start / no resume)."""
    if not cfg.get('resume'):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    from mmengine.runner import find_latest_checkpoint
    return find_latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None


def check_inputs(cfg: Config) -> None:
    """Check what the run reads before the Runner is built; raise one ``ValueError`` sentence.

    - The resume checkpoint (``--resume PATH`` or the work dir's ``last_checkpoint``) loads
      with ``weights_only=True``: a file that would execute code, or a truncated one, is
      refused with :class:`~dsc_mm.utils.CheckpointError` (a ``ValueError``).
    - mmdet datasets with a COCO json: every image it lists exists
      (:func:`dsc_mm.datasets.checks.check_coco_images`).
    """
    path = resume_checkpoint(cfg)
    if path is not None:
        load_checkpoint_file(path)
    if cfg.get('default_scope') == 'mmdet':
        from ..datasets.checks import check_coco_images
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for dataset in _leaf_datasets((cfg.get(loader) or {}).get('dataset')):
                ann_file = dataset.get('ann_file') or ''
                if ann_file.endswith('.json'):
                    root = dataset.get('data_root') or ''
                    img_dir = (dataset.get('data_prefix') or {}).get('img', '')
                    check_coco_images(_join(root, ann_file), _join(root, img_dir))


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _leaf_datasets(dataset) -> Iterator[dict]:
    """The datasets inside wrappers (``dataset=`` / ``datasets=[...]``)."""
    if not isinstance(dataset, dict):
        return
    inner = dataset.get('datasets') or ([dataset['dataset']] if 'dataset' in dataset else [])
    if not inner:
        yield dataset
    for sub in inner:
        yield from _leaf_datasets(sub)


_BUILD_PREFIX = re.compile(r'^class `\w+` in [\w.]+: ')


def build_train_data(runner) -> None:
    """Build the Runner's train loop and dataset now; raise one ``ValueError`` if it fails.

    ``runner.train()`` builds them first too (it reuses what is built here), so this only
    moves dataset errors before the first hook: an empty or missing data root, unreadable
    images, an empty dataset. The work dir then holds the config and the log, no checkpoint.
    """
    try:
        loop = runner.train_loop  # mmengine builds it (and its dataloader) on first access
    except (ValueError, OSError) as exc:
        # mmengine prefixes build errors with "class `X` in module: "
        raise ValueError(_BUILD_PREFIX.sub('', str(exc))) from None
    if loop is not None and len(loop.dataloader.dataset) == 0:
        raise ValueError(f'The training dataset of {runner.cfg.filename} is empty; check '
                         f'train_dataloader.dataset (data_root, ann_file, data_prefix).')
