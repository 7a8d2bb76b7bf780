"""Dataset-level feature statistics (DESIGN.md §6): the HDF5 cache, its board panels and the
automatic labels. Build with :func:`build_cache`, read with :func:`open_cache`.

Each name below loads its module when first used (PEP 562): a command that only hashes weights,
or finds no cache to read, imports neither h5py nor the cache builder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and readers
    from othello_tui.features.build import build_cache as build_cache
    from othello_tui.features.cache import CacheError as CacheError
    from othello_tui.features.cache import FeatureCache as FeatureCache
    from othello_tui.features.cache import FeatureIdError as FeatureIdError
    from othello_tui.features.cache import StaleCacheError as StaleCacheError
    from othello_tui.features.cache import find_cache as find_cache
    from othello_tui.features.cache import open_cache as open_cache
    from othello_tui.features.format import BuildSettings as BuildSettings
    from othello_tui.features.format import cache_path as cache_path
    from othello_tui.features.format import dictionaries_hash as dictionaries_hash
    from othello_tui.features.labels import Label as Label
    from othello_tui.features.stats import Example as Example
    from othello_tui.features.stats import FeatureStats as FeatureStats

_EXPORTS = {
    "build": ("build_cache",),
    "cache": ("CacheError", "FeatureCache", "FeatureIdError", "StaleCacheError", "find_cache", "open_cache"),
    "format": ("BuildSettings", "cache_path", "dictionaries_hash"),
    "labels": ("Label",),
    "stats": ("Example", "FeatureStats"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
