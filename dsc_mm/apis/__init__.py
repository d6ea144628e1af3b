from .train import SCOPES, build_runner, merge_args, scope_of

__all__ = ['SCOPES', 'build_runner', 'merge_args', 'scope_of']
