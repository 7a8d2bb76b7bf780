"""Predicates at every token: the vocabulary of the automatic labels and the example panels.

A token is one move of a game. Its predicates describe the move, the board *after* it and the
game's history, relative to the player who just moved (DESIGN.md §2, "mine/theirs"; §6):

square kinds, one predicate per square s:

- ``move=s``            the move was played on s
- ``flipped=s``         the move flipped s
- ``legal=s``           s is a legal next move (for whoever moves next, after any implicit pass)
- ``mine=s``, ``theirs=s``, ``empty=s``   the disc on s
- ``became_mine=s``     s turned mine with this move (the move or a flip)
- ``played_by_me=s``    s was a move of the mover's colour at an earlier move
- ``played_by_them=s``  s was a move of the other colour at an earlier move
- ``previous=s``        the previous move (one move back, whoever played it) was on s
- ``two_back=s``        the move two moves back was on s

and the rest:

- ``moved=black``, ``moved=white``   the colour that made the move (the "player" of the token)
- ``move_number=n``     the move is the n-th of the game (1…60)
- ``flips=D``           the move flipped at least one disc in direction D from it (``up`` is
  towards row a, ``right`` towards column 7)
- ``flip_count=n``      the move flipped n discs (1…5), ``flip_count>=6`` six or more

Square kind ``k`` occupies columns ``64·k … 64·k + 63`` in square order (``kind_columns``); the
example panels of DESIGN.md §6 are sums of these rows over a feature's top tokens, which is why
the panels and the labels share one matrix.
"""

from __future__ import annotations

import numpy as np

from othello_tui.game.generator import N_MOVES, GameBatch
from othello_tui.game.rules import BLACK, WHITE
from othello_tui.game.squares import N_SQUARES, square_name

KINDS = (
    "move",
    "flipped",
    "legal",
    "mine",
    "theirs",
    "empty",
    "became_mine",
    "played_by_me",
    "played_by_them",
    "previous",
    "two_back",
)
#: (row step, column step) of each flip direction, clockwise from up
DIRECTIONS = {
    "up": (-1, 0),
    "up-right": (-1, 1),
    "right": (0, 1),
    "down-right": (1, 1),
    "down": (1, 0),
    "down-left": (1, -1),
    "left": (0, -1),
    "up-left": (-1, -1),
}
MAX_FLIP_COUNT = 6  # flip_count=1 … 5, then flip_count>=6

PLAYER_BLACK = len(KINDS) * N_SQUARES
PLAYER_WHITE = PLAYER_BLACK + 1
MOVE_NUMBER = PLAYER_WHITE + 1  # columns MOVE_NUMBER + n − 1 for n = 1 … 60
FLIP_DIRECTION = MOVE_NUMBER + N_MOVES
FLIP_COUNT = FLIP_DIRECTION + len(DIRECTIONS)  # columns FLIP_COUNT + n − 1
N_PREDICATES = FLIP_COUNT + MAX_FLIP_COUNT
PREDICATE_NAMES = tuple(
    [f"{kind}={square_name(s)}" for kind in KINDS for s in range(N_SQUARES)]
    + ["moved=black", "moved=white"]
    + [f"move_number={n}" for n in range(1, N_MOVES + 1)]
    + [f"flips={direction}" for direction in DIRECTIONS]
    + [f"flip_count={n}" for n in range(1, MAX_FLIP_COUNT)]
    + [f"flip_count>={MAX_FLIP_COUNT}"]
)


def kind_columns(kind: str) -> slice:
    """The 64 predicate columns of one square kind, in square order."""
    start = KINDS.index(kind) * N_SQUARES
    return slice(start, start + N_SQUARES)


def _direction_masks() -> np.ndarray:
    """bool [64 move squares, 8 directions, 64 squares]: the squares on each ray from a square."""
    masks = np.zeros((N_SQUARES, len(DIRECTIONS), N_SQUARES), bool)
    for square in range(N_SQUARES):
        for d, (d_row, d_col) in enumerate(DIRECTIONS.values()):
            row, col = divmod(square, 8)
            while 0 <= (row := row + d_row) < 8 and 0 <= (col := col + d_col) < 8:
                masks[square, d, 8 * row + col] = True
    return masks


_RAYS = _direction_masks()


def _shifted(x_GTS: np.ndarray, back: int) -> np.ndarray:
    """``x`` of ``back`` moves earlier at every move (False before the game's first move)."""
    out = np.zeros_like(x_GTS)
    out[:, back:] = x_GTS[:, :-back]
    return out


def board_predicates(games: GameBatch) -> np.ndarray:
    """bool [G, 60, P]: every predicate at every move of every game (meaningless after a game's
    end, where the caller drops the padding tokens)."""
    G, T = games.squares.shape
    relative = games.board() * games.player[..., None]  # +1 mine, -1 theirs, 0 empty
    move = games.squares[..., None] == np.arange(N_SQUARES)
    flipped = games.flipped_mask()
    black_moves = move & (games.player == BLACK)[..., None]
    white_moves = move & (games.player == WHITE)[..., None]
    black_before = _shifted(np.cumsum(black_moves, axis=1, dtype=np.int8) > 0, 1)
    white_before = _shifted(np.cumsum(white_moves, axis=1, dtype=np.int8) > 0, 1)
    mover_is_black = (games.player == BLACK)[..., None]
    rays_GTDS = _RAYS[np.maximum(games.squares, 0)]  # a finished game's padding reads square 0
    flips_GTD = (rays_GTDS & flipped[..., None, :]).any(-1)
    n_flipped = flipped.sum(-1)
    move_number = np.broadcast_to(np.arange(1, T + 1), (G, T))
    return np.concatenate(
        [
            move,
            flipped,
            games.legal_mask(),
            relative == 1,
            relative == -1,
            relative == 0,
            move | flipped,
            np.where(mover_is_black, black_before, white_before),
            np.where(mover_is_black, white_before, black_before),
            _shifted(move, 1),
            _shifted(move, 2),
            (games.player == BLACK)[..., None],
            (games.player == WHITE)[..., None],
            move_number[..., None] == np.arange(1, N_MOVES + 1),
            flips_GTD,
            np.minimum(n_flipped, MAX_FLIP_COUNT)[..., None] == np.arange(1, MAX_FLIP_COUNT + 1),
        ],
        axis=-1,
    )
