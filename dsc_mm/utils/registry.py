"""Registering dsc_mm modules in an OpenMMLab registry without importing them at start-up."""
from importlib import import_module


def import_on_first_lookup(registry, module: str) -> None:
    """Make ``registry`` import ``module`` (which registers into it) on its first lookup.

    OpenMMLab registries import their own package lazily: ``Registry.get`` first imports the
    registry's ``locations`` (mmengine's ``import_from_location``), e.g. ``mmseg.datasets`` for
    mmseg's DATASETS. Adding ``module`` there defers its import, and that of the upstream
    modules it subclasses, to the first time a config is built in that scope, so
    ``import dsc_mm`` stays light. mmengine has no public setter for the locations, hence the
    private attributes; if the registry has imported its locations already, ``module`` is
    imported now instead.

    Args:
        registry (mmengine.registry.Registry): E.g. ``mmseg.registry.DATASETS``.
        module (str): Dotted name of the dsc_mm module whose classes register into it.
    """
    if registry._imported:
        import_module(module)
    elif module not in registry._locations:
        registry._locations.append(module)
