# The procedural scenes' segmentation classes: 0 = background, i = object class i, in the
# order of dsc_mm.datasets.scenes.SCENE_SEG_CLASSES (tests/test_configs checks it); the
# palette is PASCAL VOC's, as in the generated SegmentationClass PNGs.
scenes_metainfo = dict(
    classes=('background', 'disk', 'square', 'triangle', 'star', 'ring', 'cross'),
    palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128],
             [0, 128, 128]])
