"""A small LRU cache of per-game results that any game sharing a prefix can use.

The model is causal, so whatever one pass over a game computes at position t is exactly what a
pass over any game with the same first t+1 moves computes there: a result cached for a game
serves every game that starts with the moves a question needs (a game branched at move 20 reuses
its parent's first 20 positions).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

V = TypeVar("V")


class PrefixCache(Generic[V]):
    """Values keyed by a game's move squares; thread-safe; the least recently used go first."""

    def __init__(self, max_size: int):
        self._max_size = max_size
        self._items: OrderedDict[tuple[int, ...], V] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, squares: Sequence[int], n_moves: int) -> V | None:
        """A value cached for any game that starts with ``squares[:n_moves]``."""
        prefix = tuple(squares[:n_moves])
        with self._lock:
            for key in reversed(self._items):
                if len(key) >= n_moves and key[:n_moves] == prefix:
                    self._items.move_to_end(key)
                    return self._items[key]
        return None

    def put(self, squares: Sequence[int], value: V) -> None:
        with self._lock:
            self._items[tuple(squares)] = value
            self._items.move_to_end(tuple(squares))
            while len(self._items) > self._max_size:
                self._items.popitem(last=False)
