"""What a benchmark suite is: pretraining methods x downstream protocols x seeds.

A suite names configs only; :mod:`dsc_mm.benchmark.runner` turns it into commands. The columns
follow the paper tables (method.md): VOC det AP/AP50/AP75, COCO APbb/APmk, VOC and Cityscapes
mIoU. The tiny suite uses the same columns on its small stand-in data, each protocol on one
process at batch 2 with one seed (CPU minutes; ``--seeds`` adds more), plus a dense linear probe
on frozen features (docs/probes.md, batch 1, three seeds); by default it runs COCO detection and the probe.
The mini-real suite is made of such probes (its fine-tuning columns are in mini-real-finetune);
the paper suite adds ImageNet linear evaluation. A suite's ``default_protocols`` are the
columns run without ``--protocols``.
"""
import dataclasses
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Method:
    """A pretraining method (a table row).

    Args:
        key: Short id used in paths (``dsc-km``).
        title: Row name in the table (``DSC-KM``).
        config: Pretraining config, or None for random init / a user checkpoint.
        checkpoint: A user-supplied pretraining or converted backbone checkpoint.
    """
    key: str
    title: str
    config: Optional[str] = None
    checkpoint: Optional[str] = None

    @property
    def is_random(self) -> bool:
        return self.config is None and self.checkpoint is None


@dataclass(frozen=True)
class Protocol:
    """A downstream protocol (a group of table columns).

    Args:
        key: Short id used in paths.
        title: Column-group name in the table.
        config: Fine-tuning config.
        metrics: Column name -> metric key logged by the config's evaluator.
        scale: Factor turning the logged value into the paper's percent (COCO logs 0-1).
        options: ``--cfg-options`` of this protocol in this suite (e.g. a shorter schedule).
        gpus: Processes of a fine-tuning run (1 = plain ``tools/train.py``).
        total_batch: Images per optimizer step over all processes, the batch the config's lr is
            for (its ``auto_scale_lr.base_batch_size``); ``tools/train.py`` refuses another.
        seeds: Fine-tuning runs per cell, averaged in the table (``--seeds`` overrides it).
    """
    key: str
    title: str
    config: str
    metrics: Dict[str, str]
    scale: float = 1.0
    options: Tuple[str, ...] = ()
    gpus: int = 1
    total_batch: int = 2
    seeds: int = 1


@dataclass(frozen=True)
class Suite:
    """Methods x protocols x seeds, with the options every run of the suite gets.

    Args:
        methods: Every method the suite knows; ``default_methods`` are run unless chosen.
        protocols: Every protocol the suite knows; ``default_protocols`` (None: all of them)
            are run unless chosen.
        pretrain_options: ``--cfg-options`` for every pretraining run.
        finetune_options: ``--cfg-options`` for every fine-tuning run.
        data_env: Environment variable the configs read their data root from (``--data``).
        gpus: Processes per pretraining run (fine-tuning: each protocol's ``gpus``).
    """
    name: str
    methods: Tuple[Method, ...]
    protocols: Tuple[Protocol, ...]
    data_env: str
    default_methods: Tuple[str, ...] = ('random', 'mocov2', 'densecl', 'dsc-km', 'dsc-pm')
    default_protocols: Optional[Tuple[str, ...]] = None
    pretrain_options: Tuple[str, ...] = ()
    finetune_options: Tuple[str, ...] = ()
    gpus: int = 1
    default_data: Optional[str] = None
    description: str = ''


# mmdet's VOCMetric with iou_thrs 0.50:0.05:0.95 logs their mean as mAP (the papers' AP), 0-1;
# CocoMetric logs 0-1 too.
VOC_DET = {'AP': 'pascal_voc/mAP', 'AP50': 'pascal_voc/AP50', 'AP75': 'pascal_voc/AP75'}
COCO_DET = {'APbb': 'coco/bbox_mAP', 'APmk': 'coco/segm_mAP'}
SEG = {'mIoU': 'mIoU'}
# mmpretrain's Accuracy logs top-1 in percent.
IN1K_LINEAR = {'top-1': 'accuracy/top1'}
PROBE_DIR = 'configs/probe/'


def _short_schedule(iters: int) -> Tuple[str, ...]:
    """``--cfg-options`` that shorten a tiny fine-tuning run to ``iters`` (val + checkpoint at end)."""
    return (f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}')


def _methods(suffix: str) -> Tuple[Method, ...]:
    pre = 'configs/pretrain/'
    return (
        Method('random', 'Random init'),
        Method('mocov2', 'MoCo v2', f'{pre}mocov2_{suffix}.py'),
        Method('densecl', 'DenseCL', f'{pre}densecl_{suffix}.py'),
        Method('dsc-km', 'DSC-KM', f'{pre}dsc-km_{suffix}.py'),
        Method('dsc-pm', 'DSC-PM', f'{pre}dsc-pm_{suffix}.py'),
    )


TINY = Suite(
    name='tiny',
    description='CPU, the generated scenes (tools/generate_scenes.py), ResNet-18, small crops',
    methods=_methods('resnet18_tiny_scenes'),
    default_methods=('random', 'densecl', 'dsc-km'),
    # Sized so that `make demo` fits in 15 minutes on 2 idle CPU cores: 300 pretraining
    # iterations and a probe run past its first epoch separate the pretrained rows from random
    # init by several std (docs/demo.md, designs 2-5). The fine-tuning columns are out of the
    # default for that budget (Mask R-CNN about 80 s a cell, FCN 2 min, one seed each):
    # --protocols coco-det voc-probe adds detection to a finished demo's work dir.
    default_protocols=('voc-probe', ),
    protocols=(
        Protocol('coco-det', 'Scenes COCO (Mask R-CNN R18-FPN)',
                 'configs/detection/mask-rcnn_r18-fpn_tiny_scenes.py', COCO_DET, scale=100.,
                 # CocoMetric scores every image of the annotation file: no val subset here.
                 options=_short_schedule(60)),
        Protocol('voc-seg', 'Scenes VOC seg (FCN R18-D8)',
                 'configs/segmentation/fcn_r18-d8-plain_tiny_scenes-voc.py', SEG,
                 options=_short_schedule(120) + ('param_scheduler.0.end=120',
                                                 'val_dataloader.dataset.indices=16')),
        # Frozen backbone, linear classifier on C5: ranks the representations themselves.
        Protocol('voc-probe', 'Scenes VOC linear probe (frozen R18-D8)',
                 f'{PROBE_DIR}linear-probe_r18-d8-frozen_tiny_scenes-voc.py', SEG, total_batch=1,
                 seeds=3),  # the table shows mean ± std over 3 probe seeds (n=3)
    ),
    data_env='DSC_MM_SCENES',
    default_data='data/scenes',
    pretrain_options=('train_cfg.max_iters=300', 'default_hooks.checkpoint.interval=100',
                      'param_scheduler.0.T_max=300', 'param_scheduler.0.end=300'),
)

MINI_REAL = Suite(
    name='mini-real',
    description='CPU, the real mini datasets (camvid_mini; coco128_voc on request), ResNet-18, '
                'frozen-feature linear probes',
    methods=_methods('resnet18_tiny_real'),
    # Fine-tuning 73 / 50 images for 100-200 CPU iterations gave 0.0 detection AP for every
    # row (README): those columns are in --suite mini-real-finetune, out of the default.
    protocols=(
        Protocol('street-probe', 'CamVid mini linear probe (frozen R18-D8)',
                 f'{PROBE_DIR}linear-probe_r18-d8-frozen_tiny_camvid.py', SEG, total_batch=1),
        Protocol('voc-probe', 'coco128-VOC linear probe (frozen R18-D8)',
                 f'{PROBE_DIR}linear-probe_r18-d8-frozen_tiny_coco128-voc.py', SEG, total_batch=1),
    ),
    # On coco128-VOC (21 classes, 73 training images) the probe predicts background only for
    # random init and DSC-KM alike, at 100 and at 730 iterations (README): run it with
    # --protocols voc-probe; it does not rank the rows.
    default_protocols=('street-probe', ),
    data_env='DSC_MM_DATA',
)

MINI_REAL_FINETUNE = Suite(
    name='mini-real-finetune',
    description='CPU, the real mini datasets (coco_tiny, coco128_voc, camvid_mini), ResNet-18, '
                'fine-tuning',
    methods=_methods('resnet18_tiny_real'),
    protocols=(
        Protocol('voc-det', 'coco128-VOC det (Faster R-CNN R18-C4)',
                 'configs/detection/faster-rcnn_r18-c4_tiny_coco128-voc.py', VOC_DET, scale=100.),
        Protocol('coco-det', 'coco_tiny (Mask R-CNN R18-FPN)',
                 'configs/detection/mask-rcnn_r18-fpn_tiny_coco-tiny.py', COCO_DET, scale=100.),
        Protocol('voc-seg', 'coco128-VOC seg (FCN R18-D8)',
                 'configs/segmentation/fcn_r18-d8-plain_tiny_coco128-voc.py', SEG),
        Protocol('street-seg', 'CamVid mini (FCN R18-D8)',
                 'configs/segmentation/fcn_r18-d8-plain_tiny_camvid.py', SEG),
    ),
    data_env='DSC_MM_DATA',
)

PAPER = Suite(
    name='paper',
    description='ImageNet-1k pretraining, the published transfer protocols (method.md)',
    methods=_methods('resnet50_8xb32-coslr-200e_in1k'),
    # The launch of each protocol is part of it (transfer_protocols.md, "Launch"): detection
    # 8 GPUs x 2 = 16 (detectron2), FCN VOC12aug 4 x 4 = 16 and Cityscapes 4 x 2 = 8 (mmseg);
    # VOC detection and VOC12aug segmentation are means of 5 runs (DenseCL), the others one run.
    protocols=(
        Protocol('voc-det', 'VOC07+12 det (Faster R-CNN R50-C4)',
                 'configs/detection/faster-rcnn_r50-c4-syncbn_ms-24k_voc0712.py', VOC_DET,
                 scale=100., gpus=8, total_batch=16, seeds=5),
        Protocol('coco-det', 'COCO det + inst seg (Mask R-CNN R50-FPN 1x)',
                 'configs/detection/mask-rcnn_r50-fpn-syncbn_1x_coco.py', COCO_DET, scale=100.,
                 gpus=8, total_batch=16),
        Protocol('voc-seg', 'VOC12aug seg (FCN R50-D8)',
                 'configs/segmentation/fcn_r50-d8-plain-syncbn_20k_voc12aug-512x512.py', SEG,
                 gpus=4, total_batch=16, seeds=5),
        Protocol('cityscapes-seg', 'Cityscapes seg (FCN R50-D8)',
                 'configs/segmentation/fcn_r50-d8-plain-syncbn_40k_cityscapes-769x769.py', SEG,
                 gpus=4, total_batch=8),
        Protocol('in1k-linear', 'ImageNet linear (frozen R50, 100 ep)',
                 'configs/classification/resnet50_8xb32-linear-steplr-100e_in1k.py', IN1K_LINEAR,
                 gpus=8, total_batch=256),
    ),
    data_env='DSC_MM_DATA',
    gpus=8,
)

SUITES = {s.name: s for s in (TINY, MINI_REAL, MINI_REAL_FINETUNE, PAPER)}


def select_methods(suite: Suite, keys: Optional[List[str]] = None,
                   checkpoints: Optional[List[str]] = None) -> Tuple[Method, ...]:
    """The suite's methods named by ``keys`` (default: its defaults), plus user checkpoints.

    Args:
        keys: Method keys such as ``['random', 'dsc-km']``.
        checkpoints: ``NAME=PATH`` items: a row for each user-supplied checkpoint.
    """
    methods = _pick(suite, suite.methods, keys or suite.default_methods, 'Unknown method(s)')
    for item in checkpoints or []:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--checkpoint expects NAME=PATH, got {item!r}.')
        key = method_key(name)
        taken = {m.key for m in suite.methods} | {m.key for m in methods}
        if key in taken:
            raise ValueError(f'--checkpoint {item!r}: the row name {name!r} gives the key '
                             f'{key!r}, which another row already uses; pick another NAME.')
        methods.append(Method(key, name, checkpoint=path))
    return tuple(methods)


def select_protocols(suite: Suite, keys: Optional[List[str]] = None) -> Suite:
    """The suite restricted to the protocols named by ``keys`` (default: its defaults).

    Raises:
        ValueError: A key is not one of the suite's protocols.
    """
    if not keys and suite.default_protocols is None:
        return suite
    protocols = _pick(suite, suite.protocols, keys or suite.default_protocols,
                      'unknown protocol(s)')
    return dataclasses.replace(suite, protocols=tuple(protocols))


def _pick(suite: Suite, items, keys, unknown_message: str) -> list:
    """The ``items`` (methods or protocols) named by ``keys``, in the order of ``keys``.

    Raises:
        ValueError: ``unknown_message``, the unknown keys and the suite's choices.
    """
    by_key = {item.key: item for item in items}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise ValueError(f'{unknown_message} {unknown} for suite {suite.name}; '
                         f'choose from {sorted(by_key)}.')
    return [by_key[k] for k in keys]


def method_key(name: str) -> str:
    """A row name as a safe path segment: lower-case letters and digits, any other run as one '-'.

    The key names folders of the work dir (``pretrain/<key>``, ``cells/<key>__...``), so it
    never holds a path separator or '..' (``'../../x'`` becomes ``'x'``).

    Raises:
        ValueError: The name has no letter or digit.
    """
    key = re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')
    if not key:
        raise ValueError(f'--checkpoint NAME {name!r} has no letter or digit to name its '
                         f'folders by; use a name such as my-dsc.')
    return key
