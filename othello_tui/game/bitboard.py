"""Vectorised Othello on bitboards: one numpy uint64 per side per game, bit ``i`` = square ``i``.

The eight ray directions are handled at once as a stacked ``[8, N]`` array: four directions are
left shifts (towards higher indices) and four are right shifts, each with the mask that stops a ray
wrapping from one row edge to the other. Move generation is the classic "dumb7fill" flood along
each ray (https://www.chessprogramming.org/Dumb7Fill), which the python-chess bitboards also use.
"""

from __future__ import annotations

import numpy as np

Bitboard = np.uint64

BB_ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
BB_NOT_COL0 = np.uint64(0xFEFE_FEFE_FEFE_FEFE)  # clears column 0 (a wrap when moving right)
BB_NOT_COL7 = np.uint64(0x7F7F_7F7F_7F7F_7F7F)  # clears column 7 (a wrap when moving left)
BB_START_BLACK = np.uint64((1 << 28) | (1 << 35))  # d-4, e-3
BB_START_WHITE = np.uint64((1 << 27) | (1 << 36))  # d-3, e-4

# Directions as (shift amount, wrap mask) for shifts towards higher indices (<<) and lower (>>):
# +1 east, +8 south, +9 south-east, +7 south-west; and their opposites.
_LEFT_SHIFTS = np.array([1, 8, 9, 7], np.uint64)[:, None]
_LEFT_MASKS = np.array([BB_NOT_COL0, BB_ALL, BB_NOT_COL0, BB_NOT_COL7], np.uint64)[:, None]
_RIGHT_SHIFTS = np.array([1, 8, 9, 7], np.uint64)[:, None]
_RIGHT_MASKS = np.array([BB_NOT_COL7, BB_ALL, BB_NOT_COL7, BB_NOT_COL0], np.uint64)[:, None]
_MASKS = np.concatenate([_LEFT_MASKS, _RIGHT_MASKS])
_SHIFTS_BY_DISTANCE = {d: (_LEFT_SHIFTS * np.uint64(d), _RIGHT_SHIFTS * np.uint64(d)) for d in (1, 2, 4)}


def _shift(rays: np.ndarray, distance: int = 1) -> np.ndarray:
    """Shift every ray of a ``[8, N]`` (or broadcastable ``[N]``) stack ``distance`` squares along
    its own direction, *without* the wrap mask: callers fold the mask into the operand they AND
    with, which saves one operation per shift."""
    left, right = _SHIFTS_BY_DISTANCE[distance]
    out = np.empty((8, rays.shape[-1]), np.uint64)
    np.left_shift(rays[..., :4, :] if rays.ndim == 2 else rays, left, out=out[:4])
    np.right_shift(rays[..., 4:, :] if rays.ndim == 2 else rays, right, out=out[4:])
    return out


def _runs(start: np.ndarray, opponent: np.ndarray) -> np.ndarray:
    """``[8, N]``: opponent discs reachable from ``start`` along each ray in an unbroken run.

    A Kogge-Stone occluded fill (https://www.chessprogramming.org/Kogge-Stone_Algorithm): runs
    grow by 1, 2 and 4 squares (up to 7; a run of opponent discs is at most 6 long), and
    ``through`` marks the squares a run may cross 1, 2, then 4 squares at a time."""
    through = opponent & _MASKS  # opponent discs a ray may step onto without wrapping
    filled = start | (through & _shift(start))
    through = through & _shift(through)
    filled |= through & _shift(filled, 2)
    through &= _shift(through, 2)
    filled |= through & _shift(filled, 4)
    return filled & opponent


def legal_moves(own: np.ndarray, opponent: np.ndarray) -> np.ndarray:
    """Bitboard of the legal moves of the side owning ``own``, for every game."""
    landing = ~(own | opponent) & _MASKS  # empty squares, per direction without wrapping
    return np.bitwise_or.reduce(_shift(_runs(own, opponent)) & landing, axis=0)


def flips(move: np.ndarray, own: np.ndarray, opponent: np.ndarray) -> np.ndarray:
    """Bitboard of the discs flipped by playing ``move`` (one bit, or 0 for none) for ``own``."""
    run = _runs(move, opponent)
    closed = (_shift(run) & (own & _MASKS)) != 0  # the run ends on one of our own discs
    return np.bitwise_or.reduce(np.where(closed, run, np.uint64(0)), axis=0)


def unpack(bitboards: np.ndarray) -> np.ndarray:
    """bool ``[..., 64]`` from uint64 ``[...]``; element ``i`` is square ``i``."""
    bytes_ = np.ascontiguousarray(bitboards, dtype="<u8").view(np.uint8)
    bits = np.unpackbits(bytes_.reshape(*bitboards.shape, 8), axis=-1, bitorder="little")
    return bits.view(bool)


def pack(squares: np.ndarray) -> np.ndarray:
    """uint64 ``[...]`` from bool ``[..., 64]`` (inverse of :func:`unpack`)."""
    bytes_ = np.packbits(squares.astype(bool), axis=-1, bitorder="little")
    return np.ascontiguousarray(bytes_).view("<u8")[..., 0].astype(np.uint64)


def _signed_bytes() -> np.ndarray:
    """uint64 [65536]: entry ``plus << 8 | minus`` (two bytes of bitboards, disjoint) holds the
    eight int8 squares of those bytes, +1 for ``plus``, -1 for ``minus``, 0 for neither."""
    index = np.arange(1 << 16)[:, None]
    bit = np.arange(8)
    squares = ((index >> (bit + 8)) & 1) - ((index >> bit) & 1)  # [65536, 8]
    return np.ascontiguousarray(squares.astype(np.int8)).view("<u8")[:, 0]


_SIGNED_BYTES = _signed_bytes()


def unpack_signed(plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """int8 ``[..., 64]`` from two disjoint uint64 ``[...]``: +1 on ``plus``, -1 on ``minus``.

    One table look-up per byte pair (8 squares at once), three times faster than unpacking
    both boards and subtracting."""
    plus_bytes = np.ascontiguousarray(plus, dtype="<u8").view(np.uint8).astype(np.uint16)
    minus_bytes = np.ascontiguousarray(minus, dtype="<u8").view(np.uint8)
    signed = _SIGNED_BYTES[(plus_bytes << 8) | minus_bytes]  # [..., 8] of 8 squares each
    return signed.view(np.int8).reshape(*plus.shape, 64)
