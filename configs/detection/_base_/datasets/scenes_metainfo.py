# The procedural scenes' object classes, in category-id order (COCO ids 1..6, VOC names).
# Must equal dsc_mm.datasets.scenes.SCENE_CLASSES (tests/test_configs checks it).
scenes_metainfo = dict(classes=('disk', 'square', 'triangle', 'star', 'ring', 'cross'))
