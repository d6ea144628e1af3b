"""Fixtures of the reliability tests (defined in rel_helpers.py, shared with the test modules)."""
from rel_helpers import evil_checkpoint, scenes, tiny_dsc_run  # noqa: F401
