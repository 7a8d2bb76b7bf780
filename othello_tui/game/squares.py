"""Square names and move tokens (DESIGN.md §2).

Squares are indexed ``8*row + col``; rows ``a``–``h`` top to bottom, columns ``0``–``7``.
``c-2`` is index 18. The 60 non-centre squares, in index order, are tokens 1…60; 0 is padding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

ROWS = "abcdefgh"
CENTRE_SQUARES = (27, 28, 35, 36)  # d-3, d-4, e-3, e-4: occupied at the start, never a move
N_SQUARES = 64
N_MOVE_TOKENS = 60
PAD_TOKEN = 0

#: board index of each token (index 0, padding, maps to -1)
TOKEN_TO_SQUARE = np.array([-1] + [s for s in range(N_SQUARES) if s not in CENTRE_SQUARES], np.int8)
#: token of each board index (centre squares map to 0)
SQUARE_TO_TOKEN = np.zeros(N_SQUARES, np.uint8)
SQUARE_TO_TOKEN[TOKEN_TO_SQUARE[1:]] = np.arange(1, N_MOVE_TOKENS + 1)

_SQUARE_RE = re.compile(r"^([a-hA-H])-?([0-7])$")


NOT_A_SQUARE = "not a square (expected a row letter a–h and a column digit 0–7, e.g. c-2)"


class SquareError(ValueError):
    """A string that does not name a board square."""


def square_name(square: int) -> str:
    """``18 -> 'c-2'``."""
    if not 0 <= square < N_SQUARES:
        raise SquareError(f"square index {square} is outside 0…63")
    return f"{ROWS[square // 8]}-{square % 8}"


def parse_square(text: str) -> int:
    """``'c-2'``, ``'c2'`` or ``'C2'`` -> 18."""
    match = _SQUARE_RE.match(text.strip())
    if match is None:
        raise SquareError(f"{text!r} is {NOT_A_SQUARE}")
    return 8 * ROWS.index(match[1].lower()) + int(match[2])


def square_to_token(square: int) -> int:
    token = int(SQUARE_TO_TOKEN[square])
    if token == PAD_TOKEN:
        raise SquareError(f"{square_name(square)} is a centre square and never a move")
    return token


def token_to_square(token: int) -> int:
    if not 1 <= token <= N_MOVE_TOKENS:
        raise SquareError(f"token {token} is not a move token (1…60)")
    return int(TOKEN_TO_SQUARE[token])


def tokens_of(squares: Sequence[int] | np.ndarray) -> np.ndarray:
    """Model input tokens (int64 [T]) of a list of move squares."""
    return SQUARE_TO_TOKEN[np.asarray(squares, np.int64)].astype(np.int64)


def split_move_list(text: str) -> list[str]:
    """Split ``"f-4 e-5, d-5"`` into move strings (commas and/or whitespace separate moves)."""
    return [part for part in re.split(r"[\s,;]+", text.strip()) if part]
