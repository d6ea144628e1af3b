"""The probe configs' schedules: one length everywhere it is written, and the demo's scenes probe
trained past its first epoch (at 100 iterations its classifier barely left "background")."""
from pathlib import Path

import pytest
from mmengine.config import Config

from dsc_mm.datasets.scenes.writer import DEFAULT_NUM_TRAIN

PROBE_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'probe'


@pytest.mark.parametrize('name', sorted(p.name for p in PROBE_DIR.glob('*.py')))
def test_probe_schedule_is_one_length(name):
    cfg = Config.fromfile(str(PROBE_DIR / name))
    (poly, ) = cfg.param_scheduler
    iters = cfg.train_cfg.max_iters
    # Validation, the checkpoint and the poly decay all end at the last iteration.
    assert (cfg.train_cfg.val_interval, cfg.default_hooks.checkpoint.interval,
            poly.end) == (iters, iters, iters), name


def test_scenes_probe_runs_past_its_first_epoch():
    cfg = Config.fromfile(str(PROBE_DIR / 'linear-probe_r18-d8-frozen_tiny_scenes-voc.py'))
    assert cfg.train_cfg.max_iters == 400 and cfg.train_dataloader.batch_size == 1
    assert cfg.train_cfg.max_iters > 2 * DEFAULT_NUM_TRAIN  # 2.5 epochs of 160 scenes
