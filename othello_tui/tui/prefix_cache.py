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

    def longest(self, squares: Sequence[int]) -> tuple[V, int] | None:
        """The value cached for the game that shares the most first moves with ``squares``, and
        how many it shares (None: no game shares the first move)."""
        best: tuple[tuple[int, ...], int] | None = None
        with self._lock:
            for key in self._items:
                shared = _shared_moves(key, squares)
                if shared and (best is None or shared > best[1]):
                    best = key, shared
            if best is None:
                return None
            self._items.move_to_end(best[0])
            return self._items[best[0]], best[1]

    def put(self, squares: Sequence[int], value: V) -> None:
        with self._lock:
            self._items[tuple(squares)] = value
            self._items.move_to_end(tuple(squares))
            while len(self._items) > self._max_size:
                self._items.popitem(last=False)


def _shared_moves(a: Sequence[int], b: Sequence[int]) -> int:
    """How many first moves ``a`` and ``b`` have in common."""
    for n, (x, y) in enumerate(zip(a, b, strict=False)):  # up to the shorter
        if x != y:
            return n
    return min(len(a), len(b))
