"""Pre-flight checks of ``tools/train.py``: each user mistake becomes one sentence, before training.

- :func:`load_config`: a config that does not parse (syntax error: the file and line) or does
  not load (missing base, bad ``custom_imports``) is one sentence.
- :func:`check_config`: an unknown ``type`` or a misspelt argument anywhere in the model,
  the loops (``train_cfg``...), ``optim_wrapper`` (optimizer, ``paramwise_cfg``), the
  dataloaders (loader arguments, dataset, pipeline, sampler), ``param_scheduler`` and the
  hooks, with the nearest valid names (mmengine would only fail deep inside the Runner, with
  a traceback).
- :func:`check_inputs`: the checkpoint to resume or load from is readable and safe; COCO annotation
  files of mmdet configs point to existing images.
- :func:`build_train_data`: builds the Runner's training data (what ``runner.train()`` would
  do first), so an empty folder or broken images stop the run before any checkpoint exists.
- :func:`add_reliability_hooks`: the hooks every run gets (non-finite loss stop, RNG states
  in checkpoints).
"""
import ast
import difflib
import inspect
import os.path as osp
import re
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import (DATA_SAMPLERS, DATASETS, FUNCTIONS, HOOKS, LOOPS, MODELS,
                               OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS,
                               PARAM_SCHEDULERS, TRANSFORMS, Registry)
from torch.utils.data import DataLoader

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
    valid = list(dict.fromkeys(valid))  # a **kwargs chain can name an argument twice
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


def _own_init(klass):
    """The ``__init__`` a class defines itself (None when it inherits it)."""
    return klass.__dict__.get('__init__') if inspect.isclass(klass) else klass


def _forwards_kwargs(init, var_keyword: str) -> bool:
    """Whether ``init`` passes its ``**kwargs`` on to a parent ``__init__`` (read in its source)."""
    try:
        source = inspect.getsource(init)
    except (OSError, TypeError):
        return False
    call = re.search(r'\.__init__\(', source)  # super().__init__( / Base.__init__(self,
    return call is not None and f'**{var_keyword}' in source[call.start():]


def valid_arguments(obj) -> Optional[List[str]]:
    """The keyword arguments ``obj`` (a class or a function) accepts, or None when unknowable.

    A class whose ``__init__`` takes ``**kwargs`` and forwards them to its parent's
    ``__init__`` (``ImageFolderDataset`` -> mmpretrain's ``CustomDataset`` -> ``BaseDataset``)
    accepts the union of the chain's names; the chain is followed along the MRO until an
    ``__init__`` without ``**kwargs``. When the ``**kwargs`` go elsewhere (or reach
    ``object``), any key may be legitimate: None.
    """
    names: List[str] = []
    chain = [k for k in obj.__mro__ if _own_init(k)] if inspect.isclass(obj) else [obj]
    for klass in chain:
        if klass is object:
            return None
        init = _own_init(klass)
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):  # builtins without a signature
            return None
        names += [name for name, p in params.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != 'self']
        var_keyword = next((n for n, p in params.items() if p.kind is p.VAR_KEYWORD), None)
        if var_keyword is None:
            return names
        if not inspect.isclass(obj) or not _forwards_kwargs(init, var_keyword):
            return None
    return None


def _unknown_key(config: str, path: str, what: str, key: str, valid: List[str]) -> ValueError:
    return ValueError(f"Config {config}: {path} ({what}) has no argument '{key}'; "
                      f'{_suggest(key, valid)}')


def _check_keys(config: str, path: str, what: str, node: dict, valid: List[str],
                ignored=_IGNORED_ARGS) -> None:
    for key in node:
        if key not in ignored and key not in valid:
            raise _unknown_key(config, path, what, key, valid)


def _check_node(path: str, node: dict, registry: Registry, scope: str, config: str,
                default_type: Optional[str] = None, extra: Tuple[str, ...] = ()) -> None:
    """Check that ``node['type']`` (or ``default_type``) is registered and takes every key.

    Args:
        extra: Keys the builder consumes itself (e.g. ``by_epoch`` of ``train_cfg``).
    """
    type_name = node.get('type', default_type)
    if not isinstance(type_name, str):
        return  # a class object (lazy config): nothing to look up
    with registry.switch_scope_and_registry(scope) as scoped:
        obj = scoped.get(type_name)
        if obj is None:
            raise ValueError(
                f"Config {config}: {path} has type='{type_name}', which is not registered in "
                f"{scoped.scope}'s {registry.name} registry; "
                f'{_suggest(type_name.split(".")[-1], _candidates(scoped))}')
    valid = valid_arguments(obj)
    if valid is not None:
        _check_keys(config, path, f"type='{type_name}'", node, valid + list(extra))


def _check_tree(name: str, node, registry: Registry, scope: str, config: str) -> None:
    """:func:`_check_node` on every typed dict below ``node`` (pipelines in TRANSFORMS)."""
    for path, typed in _typed_nodes(node, name):
        _check_node(path, typed, _registry_for(path, registry), scope, config)


# What mmengine's Runner passes to the classes it builds, next to the config's keys.
_LOOP_DEFAULTS = {'train_cfg': None, 'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}
# Runner.build_dataloader pops these keys and gives the rest to torch's DataLoader.
_LOADER_OWN_KEYS = ('dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
                    'num_batch_per_epoch')
# The keys DefaultOptimWrapperConstructor.add_params reads from paramwise_cfg (and from each
# entry of its custom_keys); it ignores any other key silently.
_PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
                   'dwconv_decay_mult', 'flat_decay_mult', 'dcn_offset_lr_mult',
                   'bypass_duplicate')
_CUSTOM_KEY_KEYS = ('lr_mult', 'decay_mult')


def _check_loops(cfg: Config, scope: str, config: str) -> None:
    for name, default in _LOOP_DEFAULTS.items():
        loop = cfg.get(name)
        if not isinstance(loop, dict):
            continue
        extra = ('runner', 'dataloader', 'evaluator')
        if name == 'train_cfg' and 'type' not in loop:
            # Runner.build_train_loop pops by_epoch and picks the loop from it.
            default = 'EpochBasedTrainLoop' if loop.get('by_epoch', True) else \
                'IterBasedTrainLoop'
            extra += ('by_epoch',)
        _check_node(name, loop, LOOPS, scope, config, default, extra)


def _check_optim_wrapper(cfg: Config, scope: str, config: str) -> None:
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        return
    constructor = wrapper.get('constructor', 'DefaultOptimWrapperConstructor')
    _check_node('optim_wrapper.constructor', dict(type=constructor), OPTIM_WRAPPER_CONSTRUCTORS,
                scope, config)
    if constructor != 'DefaultOptimWrapperConstructor':
        return  # a custom constructor may read other keys (several optimizers...)
    _check_node('optim_wrapper', wrapper, OPTIM_WRAPPERS, scope, config, 'OptimWrapper',
                extra=('constructor', 'paramwise_cfg', 'optimizer'))
    optimizer = wrapper.get('optimizer')
    if isinstance(optimizer, dict):
        _check_node('optim_wrapper.optimizer', optimizer, OPTIMIZERS, scope, config)
    paramwise = wrapper.get('paramwise_cfg')
    if isinstance(paramwise, dict):
        what = 'read by DefaultOptimWrapperConstructor'
        _check_keys(config, 'optim_wrapper.paramwise_cfg', what, paramwise, _PARAMWISE_KEYS, ())
        for key, custom in (paramwise.get('custom_keys') or {}).items():
            if isinstance(custom, dict):
                _check_keys(config, f"optim_wrapper.paramwise_cfg.custom_keys['{key}']", what,
                            custom, _CUSTOM_KEY_KEYS, ())


def _check_dataloaders(cfg: Config, scope: str, config: str) -> None:
    loader_args = valid_arguments(DataLoader) + list(_LOADER_OWN_KEYS)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not isinstance(loader, dict):
            continue
        _check_keys(config, name, 'torch DataLoader', loader, loader_args, ())
        _check_tree(f'{name}.dataset', loader.get('dataset'), DATASETS, scope, config)
        for key in ('sampler', 'batch_sampler'):
            _check_tree(f'{name}.{key}', loader.get(key), DATA_SAMPLERS, scope, config)
        collate = loader.get('collate_fn')
        if isinstance(collate, dict) and isinstance(collate.get('type'), str):
            # mmengine drops a _scope_ here (see dsc_mm.compat.drop_collate_scope).
            _check_node(f'{name}.collate_fn', collate, FUNCTIONS, scope, config)


def _scheduler_nodes(schedulers) -> Iterator[Tuple[str, dict]]:
    """``(path, cfg)`` of each scheduler: one dict, a list, or ``{optimizer name: list}``."""
    if isinstance(schedulers, dict) and 'type' not in schedulers:
        for key, value in schedulers.items():
            for path, node in _scheduler_nodes(value):
                yield f'.{key}{path}', node
    elif isinstance(schedulers, dict):
        yield '', schedulers
    elif isinstance(schedulers, (list, tuple)):
        for i, node in enumerate(schedulers):
            if isinstance(node, dict):
                yield f'[{i}]', node


def check_config(cfg: Config, config_path: str = '') -> None:
    """Raise one ``ValueError`` sentence for an unknown type or a misspelt argument.

    Checked, each against the signature of the class it builds, in the config's
    ``default_scope``: ``model`` (MODELS); ``train_cfg``/``val_cfg``/``test_cfg`` (LOOPS);
    ``optim_wrapper`` (OPTIM_WRAPPERS), its ``optimizer`` (OPTIMIZERS) and ``paramwise_cfg``;
    the arguments of each dataloader (torch ``DataLoader``), its dataset (DATASETS) with
    pipelines (TRANSFORMS), samplers (DATA_SAMPLERS) and ``collate_fn``; ``param_scheduler``
    (PARAM_SCHEDULERS); ``default_hooks`` and ``custom_hooks`` (HOOKS). A class whose
    ``**kwargs`` go to its parent is checked against the whole chain (:func:`valid_arguments`).
    Not checked for keys: sub-configs built outside the registries' plain ``build`` (see
    ``_UNCHECKED_KEYS``) and classes whose ``**kwargs`` go elsewhere; mmengine still reports
    those when it builds them.

    Args:
        cfg (Config): The merged config (after ``--cfg-options``).
        config_path (str): The config file, for the message.
    """
    scope = cfg.get('default_scope')
    config = config_path or cfg.filename
    _check_tree('model', cfg.get('model'), MODELS, scope, config)
    _check_loops(cfg, scope, config)
    _check_optim_wrapper(cfg, scope, config)
    _check_dataloaders(cfg, scope, config)
    for path, node in _scheduler_nodes(cfg.get('param_scheduler')):
        _check_node(f'param_scheduler{path}', node, PARAM_SCHEDULERS, scope, config,
                    extra=('convert_to_iter_based',))
    default_hooks = cfg.get('default_hooks') or {}
    for name, hook in default_hooks.items():
        _check_tree(f'default_hooks.{name}', hook, HOOKS, scope, config)
    _check_tree('custom_hooks', cfg.get('custom_hooks'), HOOKS, scope, config)


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, with a broken config file as one ``ValueError`` sentence.

    mmengine reports a syntax error as a ``SyntaxError`` traceback without the line; this
    names the file (the config or one of its bases) and the line.
    """
    try:
        return Config.fromfile(path)
    except SyntaxError as exc:
        raise ValueError(_syntax_sentence(exc, path)) from None
    except Exception as exc:  # noqa: BLE001 - a config is Python: NameError, ImportError...
        detail = f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]
        raise ValueError(f'Config {path} could not be loaded ({detail}); fix the config (or '
                         f'the base file it names).') from None


def _syntax_sentence(exc: SyntaxError, path: str) -> str:
    """One sentence with the file and the line of a config syntax error."""
    # mmengine's SyntaxError names neither the line nor, for a base file, the file: compile
    # the config and its local bases again to find both.
    located = _first_syntax_error(path, set())
    source, exc = located if located else (path, exc)
    text = (exc.text or '').strip()
    where = f' (`{text}`)' if text else ''
    return (f'Config {source} has a Python syntax error on line {exc.lineno}{where}: '
            f'{exc.msg}; fix that line.')


def _first_syntax_error(path: str, seen: set) -> Optional[Tuple[str, SyntaxError]]:
    """``(file, error)`` of the first config file in ``path``'s ``_base_`` chain that does not
    compile, or None (bases from other packages, ``pkg::...``, are not followed)."""
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as file:
        source = file.read()
    try:
        tree = compile(source, path, 'exec', flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        return path, exc
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_'
                                                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else list(bases):
                if '::' not in base:
                    found = _first_syntax_error(
                        osp.normpath(osp.join(osp.dirname(path), base)), seen)
                    if found:
                        return found
    return None


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

    - The resume checkpoint (``--resume PATH`` or the work dir's ``last_checkpoint``), or
      else a local ``load_from``, loads with ``weights_only=True``: a file that would
      execute code, or a truncated one, is refused with :class:`~dsc_mm.utils.CheckpointError`
      (a ``ValueError``) instead of mmengine's traceback.
    - mmdet datasets with a COCO json: every image it lists exists
      (:func:`dsc_mm.datasets.checks.check_coco_images`).
    """
    path = resume_checkpoint(cfg)
    if path is None and cfg.get('load_from') and '://' not in str(cfg.load_from):
        path = cfg.load_from  # a URL is mmengine's to download
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
