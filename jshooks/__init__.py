"""JavaScript syscall hooks (QuickJS): the engine and the ``hooks`` API.

``HookEngine`` runs users' callbacks around the syscalls of one kernel
(attach it with ``Kernel.set_hooks``); ``load_script_file`` and
``load_config`` fill it from ``--hooks`` scripts and ``--config`` files.
"""

from jshooks.config import load_config, load_script_file
from jshooks.engine import HookEngine, HookLoadError, HookOptions

__all__ = [
    "HookEngine",
    "HookLoadError",
    "HookOptions",
    "load_config",
    "load_script_file",
]
