"""Dataset-level feature statistics (DESIGN.md §6): the HDF5 cache, its board panels and the
automatic labels. Build with :func:`build_cache`, read with :func:`open_cache`."""

from othello_tui.features.build import build_cache
from othello_tui.features.cache import (
    CacheError,
    FeatureCache,
    FeatureIdError,
    StaleCacheError,
    find_cache,
    open_cache,
)
from othello_tui.features.format import BuildSettings, cache_path, dictionaries_hash
from othello_tui.features.labels import Label
from othello_tui.features.stats import Example, FeatureStats

__all__ = [
    "BuildSettings",
    "CacheError",
    "Example",
    "FeatureCache",
    "FeatureIdError",
    "FeatureStats",
    "Label",
    "StaleCacheError",
    "build_cache",
    "cache_path",
    "dictionaries_hash",
    "find_cache",
    "open_cache",
]
