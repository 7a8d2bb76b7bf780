"""Repeated openings: the first moves of random games often coincide, and a position reached by
the same moves is the same model input, so its activations are the same. Left alone, a feature
of the opening fills all its top-example slots with one position from hundreds of games.

``OpeningFilter`` marks the tokens of positions 0…``OPENING``−1 whose move prefix was already
seen, so the top examples skip repeats. Later positions are treated as distinct: two random games
sharing their first ``OPENING`` + 1 moves are rare, and the set of openings is bounded by the
game tree (perft(8) = 390,216), so memory stays flat however many games stream past.

Shape legend: B games, T positions.
"""

from __future__ import annotations

import numpy as np

OPENING = 8  # positions checked for repeats
_MULTIPLIER = np.uint64(1_099_511_628_211)  # FNV-1a's 64-bit prime


def prefix_keys(tokens_BT: np.ndarray) -> np.ndarray:
    """uint64 [B, T]: a hash of the moves up to and including each position (equal prefixes, equal
    keys; distinct ones collide with probability ~2⁻⁶⁴)."""
    key_B = np.zeros(len(tokens_BT), np.uint64)
    keys_BT = np.empty(tokens_BT.shape, np.uint64)
    with np.errstate(over="ignore"):  # wrapping is the point
        for t in range(tokens_BT.shape[1]):
            key_B = key_B * _MULTIPLIER + tokens_BT[:, t].astype(np.uint64) + np.uint64(1)
            keys_BT[:, t] = key_B
    return keys_BT


class OpeningFilter:
    """Remembers the openings seen so far; ``first_seen`` marks the new ones."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def first_seen(self, tokens_BT: np.ndarray) -> np.ndarray:
        """bool [B, T]: False where position t < OPENING repeats a prefix seen earlier (in an
        earlier call, or an earlier game of this batch)."""
        keys_BT = prefix_keys(tokens_BT)
        fresh_BT = np.ones(tokens_BT.shape, bool)
        opening = keys_BT[:, :OPENING]
        for t in range(opening.shape[1]):
            _, first = np.unique(opening[:, t], return_index=True)
            column = np.zeros(len(opening), bool)
            column[first] = True
            column &= np.array([int(k) not in self._seen for k in opening[:, t]])
            fresh_BT[:, t] = column
            self._seen.update(int(k) for k in opening[column, t])
        return fresh_BT
